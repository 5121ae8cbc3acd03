"""Deterministic trial inputs, drawn inside the sandbox.

The reference run and the candidate's run draw the same inputs from the same seed, so no tensor
needs to cross to the candidate; a digest of each input (``kernel_env.wire.digest``) lets the trusted
side prove they did.
"""

from __future__ import annotations

import torch


def make_inputs(module, seed: int, variant: str = "normal", device: str = "cpu", dtype: torch.dtype | None = None) -> list:
    """The task's inputs for ``seed``, in one of ``protocol.VARIANTS``. ``device`` other than the CPU
    draws there (the timed calls on a GPU: a fresh full-size set per call would be slow on the host).
    With ``dtype`` (a precision variant), floating inputs are cast to it after the variant is applied."""
    torch.manual_seed(seed)
    if device == "cpu":
        inputs = list(module.get_inputs())
    else:
        with torch.device(device):
            inputs = list(module.get_inputs())
    inputs = _varied(inputs, seed, variant)
    if dtype is None or dtype is torch.float32:
        return inputs
    return [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]


def _varied(inputs: list, seed: int, variant: str) -> list:
    if variant == "normal":
        return inputs
    gen = torch.Generator().manual_seed(seed ^ 0x5EED)
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            if variant == "scaled":
                x = x * 4.0
            elif variant == "shifted":
                x = x + 2.0
            elif variant == "heavy":  # a log-normal scale mixture: occasional large magnitudes
                x = x * torch.exp(0.75 * torch.randn(x.shape, generator=gen, dtype=x.dtype))
            else:
                raise ValueError(f"unknown input variant {variant!r}")
        out.append(x)
    return out


def init_inputs(module, seed: int) -> list:
    torch.manual_seed(seed)
    return list(module.get_init_inputs())
