"""Deterministic trial inputs and cheap output fingerprints, shared by both sides of the sandbox.

The reference worker and the candidate's process draw the same inputs from the same seed, so no
tensor needs to cross to the candidate; a digest of each input lets the trusted side prove they did.
"""

from __future__ import annotations

import hashlib

import torch

#: Input distributions. Variants probe for statistical shortcuts (hack 14); the trusted side drops a
#: variant for a task whose reference output is not finite on it.
VARIANTS = ("normal", "scaled", "shifted", "heavy")


def make_inputs(module, seed: int, variant: str = "normal") -> list:
    torch.manual_seed(seed)
    inputs = list(module.get_inputs())
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


def digest(value) -> str:
    """Content hash of a tensor (bytes, dtype and shape) or a repr for anything else."""
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:24]
    return repr(value)[:200]


def fingerprint(value: torch.Tensor, key: int, samples: int = 32) -> list[float]:
    """Sum, absolute sum and ``samples`` elements at positions drawn from ``key`` (kept secret until
    the request), so timed outputs can be checked against the reference without shipping them."""
    flat = value.detach().reshape(-1).to("cpu", torch.float64)
    n = flat.numel()
    if n == 0:
        return [0.0, 0.0]
    idx = torch.randint(0, n, (min(samples, n),), generator=torch.Generator().manual_seed(key))
    return [flat.sum().item(), flat.abs().sum().item(), *flat[idx].tolist()]


def fingerprints_close(got: list[float], want: list[float], atol: float, rtol: float, n: int) -> bool:
    """Sums are compared with tolerances scaled by the element count; samples element-wise."""
    if len(got) != len(want):
        return False
    (gs, ga, *gv), (ws, wa, *wv) = got, want
    tol = n * atol + rtol * wa
    if not (abs(gs - ws) <= tol and abs(ga - wa) <= tol):  # written so that NaN fails
        return False
    return all(abs(g - w) <= atol + rtol * abs(w) for g, w in zip(gv, wv))
