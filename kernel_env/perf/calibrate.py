"""Checking the model against a GPU: measured vs modelled figures of the same evaluations.

Why here and not in the GPU check: the arithmetic is the model's own business (what a good model is,
which of its constants a measurement can move), and it must be testable on the CPU. The GPU check
(``kernel_env.gpucheck``) collects the pairs with ``EvalConfig(model_on_cuda=True)`` and calls this.

What a measurement can say about the constants: for results whose modelled time is dominated by one
limit (``bound``), the median of measured / modelled time says how far that limit's efficiency is
off. A memory-bound kernel measured 1.2x slower than modelled suggests ``MEMORY_EFFICIENCY / 1.2``;
compute-bound ones the tensor efficiency (a CUDA-core-bound kernel would move
``SIMT_EFFICIENCY`` instead: the bound does not tell the two apart, so read the rows), launch-bound
ones the launch cost. Medians, because one odd task must not move a constant.
The suggestion is a starting point for a person editing ``roofline.py``, not applied automatically:
the model must stay deterministic and reviewable.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .roofline import MEMORY_EFFICIENCY, TENSOR_EFFICIENCY

#: What a bound's median ratio (measured / modelled time) rescales.
CONSTANTS = {"memory": ("MEMORY_EFFICIENCY", MEMORY_EFFICIENCY),
             "compute": ("TENSOR_EFFICIENCY", TENSOR_EFFICIENCY)}


@dataclass(frozen=True)
class Pair:
    """One evaluation seen both ways: on the GPU (measured) and through the model."""

    task_id: str
    measured_us: float
    modelled_us: float
    measured_speedup: float
    modelled_speedup: float
    bound: str

    @classmethod
    def of(cls, result) -> Pair | None:
        """From an ``EvalResult`` of a CUDA evaluation with ``model_on_cuda``; None without both sides."""
        m = result.modelled
        if not m or not result.runtime_ms or not result.speedup:
            return None
        return cls(result.task_id, result.runtime_ms * 1e3, m["runtime_us"], result.speedup, m["speedup"],
                   m["bound"])


def ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank (what Spearman's coefficient needs)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on the ranks); None with fewer than 3 pairs or no spread."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two lists of the same length")
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else None


def calibration(pairs: list[Pair]) -> dict:
    """The model's agreement with the GPU: rank correlations, the spread of the time ratio, and per
    bound the median ratio with the constant it suggests."""
    pairs = [p for p in pairs if p is not None]
    ratios = [p.measured_us / p.modelled_us for p in pairs if p.modelled_us > 0]
    by_bound: dict[str, dict] = {}
    for bound in sorted({p.bound for p in pairs}):
        group = [p.measured_us / p.modelled_us for p in pairs if p.bound == bound and p.modelled_us > 0]
        entry = {"n": len(group), "median_ratio": statistics.median(group) if group else None}
        if bound in CONSTANTS and group:
            name, value = CONSTANTS[bound]
            entry["suggested"] = {name: round(value / entry["median_ratio"], 3), "now": value}
        by_bound[bound] = entry
    return {
        "n": len(pairs),
        "speedup_rank_correlation": spearman([p.measured_speedup for p in pairs], [p.modelled_speedup for p in pairs]),
        "runtime_rank_correlation": spearman([p.measured_us for p in pairs], [p.modelled_us for p in pairs]),
        "median_ratio": statistics.median(ratios) if ratios else None,
        "log_ratio_spread": statistics.pstdev([math.log(r) for r in ratios]) if len(ratios) > 1 else None,
        "by_bound": by_bound,
    }
