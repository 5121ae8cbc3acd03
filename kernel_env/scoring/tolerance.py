"""How close a candidate's outputs must be to the reference's: named presets, by dtype, scale-aware,
and :func:`compare`, the one comparison that applies them (the judge's, and ``tasks check``'s).

Every result names the preset, dtype and figures it was judged under (``EvalResult.tolerance``), so
two numbers are comparable only when those agree.

- ``drkernel`` (the default): atol = rtol = 1e-2 at every dtype, as KernelGYM and Dr. Kernel report
  their figures. It is the default because RL rewards should be comparable with that literature, and
  because a float32 ``tl.dot`` on a GPU rounds through TF32 (about 1e-3 relative), which it admits.
- ``kernelbench``: 1e-4 at float32 and 1e-2 at bfloat16 and float16, as current KernelBench (torchbench's
  figures). TF32 cannot meet 1e-4: a float32 ``tl.dot`` needs ``input_precision="ieee"`` there.

Scale-aware (the presets; figures set by hand are taken as given): the absolute tolerance never
exceeds ``rtol`` times the reference output's root mean square. An output whose values all sit far
below ``atol`` (a softmax over 16k classes is ~6e-5 per entry) would otherwise be matched by zeros;
with the cap, a constant cannot pass by tolerance alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..protocol import DTYPES

#: Spellings accepted for each short name.
DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
#: preset -> dtype -> (atol, rtol)
PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "drkernel": {"fp32": (1e-2, 1e-2), "bf16": (1e-2, 1e-2), "fp16": (1e-2, 1e-2)},
    "kernelbench": {"fp32": (1e-4, 1e-4), "bf16": (1e-2, 1e-2), "fp16": (1e-2, 1e-2)},
}
DEFAULT_PRESET = "drkernel"


def dtype_name(value: str) -> str:
    """The short name of a precision (``"bf16"`` for ``"bfloat16"``); ValueError for an unknown one."""
    name = DTYPE_ALIASES.get(str(value).lower(), str(value).lower())
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {value!r}: choose one of {', '.join(DTYPES)}")
    return name


def torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[dtype_name(name)])


@dataclass(frozen=True)
class Tolerance:
    """The figures one evaluation is judged by, and where they came from."""

    atol: float
    rtol: float
    preset: str  # a preset's name, or "custom" when atol or rtol was set by hand
    dtype: str
    scale_aware: bool = True  # cap atol by the output's scale; figures set by hand are taken as given

    @classmethod
    def resolve(cls, preset: str, dtype: str, atol: float | None = None, rtol: float | None = None) -> Tolerance:
        if preset not in PRESETS:
            raise ValueError(f"unknown tolerance preset {preset!r}: choose one of {', '.join(PRESETS)}")
        dtype = dtype_name(dtype)
        base_atol, base_rtol = PRESETS[preset][dtype]
        custom = atol is not None or rtol is not None  # set by hand: taken as given
        return cls(base_atol if atol is None else float(atol), base_rtol if rtol is None else float(rtol),
                   "custom" if custom else preset, dtype, scale_aware=not custom)

    def atol_for(self, want) -> float:
        """The absolute tolerance for one reference output: ``atol``, capped at ``rtol`` times its RMS."""
        if not self.scale_aware or want.numel() == 0 or not want.is_floating_point():
            return self.atol
        rms = want.double().pow(2).mean().sqrt().item()
        if not math.isfinite(rms):
            return self.atol
        return min(self.atol, self.rtol * rms) if rms > 0 else self.atol

    def to_dict(self) -> dict:
        return asdict(self)


#: A probe's failure names a hack only when it is more than a near miss: some element off by more than
#: this many tolerances, or more than this share of elements off (rounding gives neither).
NEAR_MISS_EXCESS, NEAR_MISS_SHARE = 4.0, 0.01


@dataclass
class Comparison:
    ok: bool
    why: str = ""
    max_abs: float = 0.0
    mean_abs: float = 0.0
    max_rel: float = 0.0
    # a failure's worst error over what the tolerance allowed there, and its share of elements outside
    # the tolerance (a wrong shape, dtype or count is as far off as it gets)
    excess: float = math.inf
    bad_share: float = 1.0

    @property
    def near_miss(self) -> bool:
        """A failure within a few tolerances on a few elements: rounding (a half-precision task, an
        accumulation order), not a different answer."""
        return not self.ok and self.excess <= NEAR_MISS_EXCESS and self.bad_share <= NEAR_MISS_SHARE


def compare(got: list, want: list, tol: Tolerance, labels: list[str] | None = None) -> Comparison:
    """Element-wise ``|got - want| <= atol' + rtol * |want|``, where ``atol'`` is the tolerance's
    absolute figure capped by the output's scale (``Tolerance.atol_for``). ``labels`` name the values
    (a backward task's gradients) in messages."""
    import torch

    if len(got) != len(want):
        return Comparison(False, f"returned {len(got)} outputs, expected {len(want)}")
    worst = Comparison(True)
    for i, (g, w) in enumerate(zip(got, want)):
        label = f"{labels[i]}: " if labels and i < len(labels) else (f"output {i}: " if len(want) > 1 else "")
        if not isinstance(g, torch.Tensor):
            return Comparison(False, f"{label}returned {g!s} instead of a tensor")
        if g.shape != w.shape:
            return Comparison(False, f"{label}shape {tuple(g.shape)}, expected {tuple(w.shape)}")
        if g.dtype != w.dtype:
            return Comparison(False, f"{label}dtype {g.dtype}, expected {w.dtype}")
        gd, wd = g.double(), w.double()
        if w.is_floating_point() and not torch.isfinite(gd).all() and torch.isfinite(wd).all():
            return Comparison(False, f"{label}contains NaN or Inf where the reference is finite")
        diff = (gd - wd).abs().nan_to_num(0.0)
        max_abs = diff.max().item() if diff.numel() else 0.0
        mean_abs = diff.mean().item() if diff.numel() else 0.0
        scale = wd.abs().max().item() if wd.numel() else 0.0
        worst.max_abs = max(worst.max_abs, max_abs)
        worst.mean_abs = max(worst.mean_abs, mean_abs)
        worst.max_rel = max(worst.max_rel, max_abs / scale if scale > 0 else 0.0)
        atol, rtol = tol.atol_for(w), tol.rtol
        if not torch.allclose(gd, wd, atol=atol, rtol=rtol, equal_nan=True):
            bad = int((~torch.isclose(gd, wd, atol=atol, rtol=rtol, equal_nan=True)).sum())
            excess = (diff / (atol + rtol * wd.abs().nan_to_num(0.0))).nan_to_num(0.0).max().item()
            capped = f" (capped by the output's scale from {tol.atol:g})" if atol < tol.atol else ""
            return Comparison(False, f"{label}{bad} of {w.numel()} elements differ (max abs error {max_abs:.3g}, "
                                     f"tolerance atol={atol:.3g}{capped} rtol={rtol:g}, preset {tol.preset})",
                              worst.max_abs, worst.mean_abs, worst.max_rel, excess, bad / max(w.numel(), 1))
    return worst


def judged_by(preset: str = DEFAULT_PRESET, dtype: str = "fp32"):
    """Task validation (``tasks.check.Judged``) with the evaluator's comparison under ``preset`` at
    ``dtype``: a task is degenerate exactly when the evaluator could not tell a constant answer apart."""
    from tasks.check import Judged

    tol = Tolerance.resolve(preset, dtype)
    return Judged(close=lambda a, b: compare(a, b, tol).ok, dtype=torch_dtype(tol.dtype),
                  name=f"the {tol.preset} tolerance at {tol.dtype}: atol={tol.atol:g}, rtol={tol.rtol:g}, scale-aware")
