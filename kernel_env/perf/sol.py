"""Speed of light: how close a measured kernel came to the device's roofline.

For one evaluated kernel on CUDA: the work it had to do (FLOPs per precision and bytes), divided by
the measured time, as a fraction of the device's peaks. The roofline time of the work is the longer
of ``bytes / HBM bandwidth`` and ``sum(flops_p / peak_p)``; ``fraction`` is that time over the
measured one, which is the larger of ``bandwidth_fraction`` and ``compute_fraction``, and ``bound``
names the larger (the same as comparing the work's arithmetic intensity with the ridge point).

Whose work: by default the reference's (``REFERENCE_OPS``, its aten ops traced at full size), so the
numerator is the problem's work, the same for every candidate. A candidate that does extra work
(recomputes, moves padding, re-reads) must not score a higher fraction for it; with the reference's
work, wasted effort shows as a lower fraction. ``OWN_KERNELS`` (the candidate's recorded launches) is
there to show how busy the candidate's own kernels kept the device, and says so in ``work``.

A fraction above 1 is possible: the byte counts are compulsory traffic at DRAM, and caches (L2, L1)
serving repeated reads, or a work count that overstates what a kernel needs, let a kernel beat the HBM
roof. It is kept as measured, not clipped, and flagged ``ABOVE_PEAK`` so that it is read as "the
model of the work is off" rather than as a kernel faster than the hardware.

CUDA only: the interpreter's wall clock is a CPU figure, and a fraction of a GPU peak made from it
means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .gpus import GPU, gpu_for_device
from .gpus import gpu as gpu_spec
from .records import PRECISIONS, KernelLaunch, RecordError, TorchOp, parse_records
from .roofline import TENSOR_CLASSES, _dot_rate

#: Where the work figures came from (``sol["work"]``).
REFERENCE_OPS = "reference ops"
OWN_KERNELS = "own kernels"
WORK_SOURCES = (REFERENCE_OPS, OWN_KERNELS)
#: Flag: the measured time beats the roofline of the counted work (caches, or counts too high).
ABOVE_PEAK = "above_peak"


@dataclass(frozen=True)
class Work:
    """What a forward has to do: FLOPs keyed by the precision they run at, and DRAM bytes."""

    flops: dict[str, float] = field(default_factory=dict)
    bytes: float = 0.0
    source: str = REFERENCE_OPS


def work_of(records, source: str = REFERENCE_OPS) -> Work | None:
    """The summed work of parsed (or raw) records; None when they fail validation, since records that
    do not follow the schema are treated like a forged report, never as zero work."""
    try:
        parsed = parse_records(records)
    except RecordError:
        return None
    flops: dict[str, float] = {}
    moved = 0.0
    for record in parsed:
        record_flops, record_bytes = _kernel_work(record) if isinstance(record, KernelLaunch) else _op_work(record)
        for precision, count in record_flops.items():
            if count:
                flops[precision] = flops.get(precision, 0.0) + count
        moved += record_bytes
    return Work(flops, moved, source)


def _op_work(op: TorchOp) -> tuple[dict[str, float], float]:
    """A torch op's FLOPs at the precision ``roofline.price_torch`` runs them (tensor classes at their
    own, the rest on CUDA cores) and its compulsory bytes; views and allocations launch nothing."""
    if op.op_class in ("view", "alloc"):
        return {}, 0.0
    precision = op.precision if op.op_class in TENSOR_CLASSES else ("fp64" if op.precision == "fp64" else "fp32")
    return {precision: op.flops}, op.bytes_read + op.bytes_written


def _kernel_work(k: KernelLaunch) -> tuple[dict[str, float], float]:
    """An own launch's ``tl.dot`` FLOPs per precision plus one FP32 FLOP per other operation (as
    ``Row.flops`` counts them), and its distinct bytes: what must cross HBM at least once."""
    flops = dict(k.dot_flops)
    flops["fp32"] = flops.get("fp32", 0.0) + k.alu_ops + k.sfu_ops
    distinct = min(k.unique_bytes_loaded, k.sector_bytes_loaded) + min(k.unique_bytes_stored, k.access_bytes_stored)
    return flops, distinct


def speed_of_light(flops: float | Mapping[str, float], bytes_moved: float, runtime_us: float,
                   gpu: str | GPU | None, work: str = REFERENCE_OPS, precision: str = "fp32") -> dict | None:
    """The roofline figures of ``flops`` (a total at ``precision``, or a map precision -> FLOPs) and
    ``bytes_moved`` done in ``runtime_us`` on ``gpu`` (a ``GPU``, a table name, or a CUDA device name).

    None instead of a figure for input that cannot give one: no GPU or an unknown one, a runtime that
    is not a positive finite number, negative or non-finite work, an unknown precision, or no work at
    all. A wrong figure in a result is worse than none."""
    spec = _resolve(gpu)
    by_precision = _flops_by_precision(flops, precision)
    if spec is None or by_precision is None or work not in WORK_SOURCES:
        return None
    if not (_non_negative(bytes_moved) and _non_negative(runtime_us) and runtime_us > 0):
        return None
    total_flops = sum(by_precision.values())
    seconds = runtime_us * 1e-6
    memory_s = bytes_moved / spec.hbm_bandwidth
    compute_s = sum(f / _dot_rate(spec, p) for p, f in by_precision.items())
    bandwidth_fraction, compute_fraction = memory_s / seconds, compute_s / seconds
    fraction = max(bandwidth_fraction, compute_fraction)
    if not (0 < fraction < math.inf):  # no work at all, or figures that overflow
        return None
    main = max(by_precision, key=by_precision.get) if total_flops else precision
    return {
        "gpu": spec.name,
        "runtime_us": float(runtime_us),
        "bytes": float(bytes_moved),
        "flops": float(total_flops),
        "flops_by_precision": {p: float(f) for p, f in by_precision.items() if f},
        "precision": main,
        "achieved_gbps": bytes_moved / seconds / 1e9,
        "achieved_tflops": total_flops / seconds / 1e12,
        "bandwidth_fraction": bandwidth_fraction,
        "compute_fraction": compute_fraction,
        "fraction": fraction,
        "bound": "memory" if memory_s >= compute_s else "compute",
        "intensity": total_flops / bytes_moved if bytes_moved else None,  # FLOP/byte; None: no bytes
        "ridge": _effective_peak(spec, by_precision, main) / spec.hbm_bandwidth,  # FLOP/byte where the roofs meet
        "work": work,
        "flags": [ABOVE_PEAK] if fraction > 1 else [],
    }


def sol_of_records(records, runtime_us: float, gpu: str | GPU | None, source: str = REFERENCE_OPS) -> dict | None:
    """``speed_of_light`` of the summed work of ``records``: the one call that fills ``EvalResult.sol``
    from the reference's full-size trace (or, with ``source=OWN_KERNELS``, the candidate's launches)."""
    work = work_of(records, source)
    if work is None:
        return None
    return speed_of_light(work.flops, work.bytes, runtime_us, gpu, work=work.source)


def _resolve(gpu: str | GPU | None) -> GPU | None:
    """A table name ("H100", "h200-sxm") or a CUDA device name ("NVIDIA H100 80GB HBM3"); None for
    anything else, never the default part."""
    if isinstance(gpu, GPU):
        return gpu
    if not isinstance(gpu, str):
        return None
    try:
        return gpu_spec(gpu)
    except KeyError:
        return gpu_for_device(gpu)


def _effective_peak(spec: GPU, by_precision: dict[str, float], main: str) -> float:
    """FLOP/s of this mix of precisions at their peaks (a FLOP-weighted harmonic mean); the peak of
    ``main`` when there are no FLOPs."""
    total = sum(by_precision.values())
    if not total:
        return _dot_rate(spec, main)
    return total / sum(f / _dot_rate(spec, p) for p, f in by_precision.items())


def _flops_by_precision(flops, precision: str) -> dict[str, float] | None:
    if precision not in PRECISIONS:
        return None
    counts = flops if isinstance(flops, Mapping) else {precision: flops}
    if not all(p in PRECISIONS and _non_negative(f) for p, f in counts.items()):
        return None
    return {p: float(f) for p, f in counts.items()}


def _non_negative(value) -> bool:
    """A finite number >= 0 (bools are not numbers here)."""
    return type(value) is not bool and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
