"""Shared bits of the benchmarks: fresh answers (so the result cache does not answer) and medians."""

import statistics
import time


def tagged(answer: str, tag: str) -> str:
    """The same answer with a comment inside its code block: new code, so no result-cache hit."""
    head, sep, tail = answer.rpartition("```")
    return f"{head}# {tag}\n{sep}{tail}"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def median_ms(seconds) -> float:
    return round(statistics.median(seconds) * 1e3, 3)


def cv(values) -> float:
    """Coefficient of variation (std / mean) of a sample."""
    values = list(values)
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0
