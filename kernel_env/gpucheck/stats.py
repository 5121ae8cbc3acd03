"""Small statistics for the report, written out so the GPU image needs no scipy.

Undefined figures (too few values, a constant sample) are None, never NaN: the report is strict JSON.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def paired(rows: Sequence[dict], a: str, b: str) -> tuple[list[float], list[float]]:
    """The rows' (a, b) values where both are finite numbers."""
    xs, ys = [], []
    for row in rows:
        x, y = row.get(a), row.get(b)
        if _finite(x) and _finite(y):
            xs.append(float(x))
            ys.append(float(y))
    return xs, ys


def rank_correlation(rows: Sequence[dict], a: str, b: str) -> dict:
    """Spearman's rho of two row fields, with the number of pairs it rests on."""
    from ..perf.calibrate import spearman

    xs, ys = paired(rows, a, b)
    rho = spearman(xs, ys)
    return {"rho": None if rho is None else round(rho, 4), "n": len(xs), "fields": [a, b]}


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample standard deviation over mean)."""
    values = [float(v) for v in values if _finite(v)]
    if len(values) < 2 or statistics.mean(values) == 0:
        return None
    return statistics.stdev(values) / statistics.mean(values)


def median(values: Sequence[float]) -> float | None:
    values = [float(v) for v in values if _finite(v)]
    return statistics.median(values) if values else None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
