"""From the work a run reported to what the judge needs: the modelled comparison, who did the work,
and which lower-precision tensors appeared.

One accounting for three uses: the reward's speed term on the interpreter (``Modelled.speedup``),
coverage (the own kernels' share of the candidate's modelled time, not of interpreter wall time), and
the work audit (torch compute doing most of that time; tensors below the task's precision).
"""

from __future__ import annotations

from dataclasses import dataclass

from .modelled import Modelled, modelled
from .records import TorchOp, parse_records
from .scaling import cross_check, ratios, scale

WORK_SCALED = "work_scaled"  # no full-size recording: the small-size work, scaled by the reference's growth
LOW_PRECISIONS = ("fp16", "bf16", "fp8")


@dataclass(frozen=True)
class Assessment:
    modelled: Modelled
    own_share: float  # own kernels' share of the candidate's modelled time
    torch_share: float  # torch compute ops' share (glue excluded)
    low_precision: tuple[str, ...]  # torch ops that produced tensors below the task's precision


def assess(candidate: dict[str, dict], reference: dict[str, dict], gpu: str | None = None) -> Assessment:
    """``candidate`` and ``reference`` map "small"/"full" to WORK events. Raises ``RecordError`` for
    records that break the schema, ``KeyError`` for a missing size (no model then)."""
    ref_small, ref_full = reference["small"]["records"], reference["full"]["records"]
    small = candidate["small"]["records"]
    scaled = scale(small, ratios(ref_small, ref_full))
    full = candidate.get("full", {}).get("records")
    records, flags = cross_check(full, scaled) if full is not None else (scaled, [WORK_SCALED])
    result = modelled(records, ref_full, gpu, output_bytes=float(reference["full"].get("output_bytes", 0)),
                      flags=flags)
    total = result.runtime_us or 1.0
    own = sum(r.us for r in result.rows if r.kind == "kernel") / total
    torch_compute = sum(r.us for r in result.rows if r.kind == "torch" and r.flops > 0) / total
    return Assessment(result, min(1.0, own), min(1.0, torch_compute), _below_precision(small, ref_small))


def _below_precision(candidate, reference) -> tuple[str, ...]:
    """Torch ops of the candidate whose results are fp16/bf16/fp8 when the reference has none."""
    ref_ops = [r for r in parse_records(reference) if isinstance(r, TorchOp)]
    if any(r.precision in LOW_PRECISIONS for r in ref_ops):
        return ()
    found = [r for r in parse_records(candidate) if isinstance(r, TorchOp) and r.precision in LOW_PRECISIONS]
    return tuple(sorted({f"{r.name} -> {r.dtype}" for r in found}))

