"""Small-size work scaled to the benchmark size by the reference's ratios: fallback and cross-check.

Why: a full-size sampled recording (see ``kernel_env.inside.work``) needs full-size inputs on the CPU;
when they exceed the memory cap, or the recording failed, the only evidence is the small-size run. The
reference is traced at both sizes on meta tensors (free), so its ratios say how the task's work grows:
FLOPs (``flops``), bytes moved (``moved``) and bytes written (``written``, which is how grids that
tile the output grow). A kernel whose loads are mostly reuse (``tl.dot``, or loads above
``REUSE_HEAVY`` x its distinct bytes in a FLOP-heavy task) grows like FLOPs; any other like bytes;
its program count grows like the output; its heaviest program stays as it was.

Where it breaks: sizes that grow different dimensions unevenly for different kernels, padding at the
small size (blocks larger than the small tensors inflate small-size work, so scaled figures run high),
grids that do not follow the output (persistent kernels: scaled program counts run high), and work
whose growth differs from the reference's (an algorithmic change). Scaled records are marked
``extrapolation="scaled"`` and the result should say so.

``cross_check`` compares a sampled full-size recording with the scaled small-size one: a kernel
sequence that differs between the sizes is flagged (honest code may dispatch by size; the flag informs),
and full-size work far below the scaled work (``DEFICIT``) is treated as a recording that hid work:
the scaled records are priced instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .records import KernelLaunch, Record, TorchOp, parse_records

REUSE_HEAVY = 4.0
IMBALANCED = 4.0  # a heaviest program above this many times the mean program holds a share of the work
DEFICIT = 0.1  # full-size work below this share of the scaled small-size work is not believed
LAUNCHES_DIFFER = "launches_differ_by_size"
WORK_INCONSISTENT = "work_extrapolation_inconsistent"
TENSOR_CLASSES = ("matmul", "conv", "attention")


@dataclass(frozen=True)
class Ratios:
    flops: float
    moved: float
    written: float
    flop_heavy: bool  # the reference's time is in matmul / convolution / attention


def _ratio(full: float, small: float, default: float) -> float:
    return full / small if small > 0 else default


def ratios(small_reference, full_reference) -> Ratios:
    """How the reference's work grows from the small size to the full one (records of both traces)."""
    small = [r for r in parse_records(small_reference) if isinstance(r, TorchOp)]
    full = [r for r in parse_records(full_reference) if isinstance(r, TorchOp)]
    moved = _ratio(sum(r.bytes_read + r.bytes_written for r in full),
                   sum(r.bytes_read + r.bytes_written for r in small), 1.0)
    written = _ratio(sum(r.bytes_written for r in full), sum(r.bytes_written for r in small), moved)
    flops = _ratio(sum(r.flops for r in full), sum(r.flops for r in small), moved)
    return Ratios(flops, moved, written, any(r.op_class in TENSOR_CLASSES for r in full))


def _scale_kernel(k: KernelLaunch, r: Ratios) -> KernelLaunch:
    reuse = k.bytes_loaded > REUSE_HEAVY * max(1.0, k.unique_bytes_loaded)
    work = r.flops if k.dot_flops or (r.flop_heavy and reuse) else r.moved
    heavy = _heaviest(k, work)
    return replace(
        k, extrapolation="scaled", programs=max(k.executed, k.programs * r.written), **heavy,
        bytes_loaded=k.bytes_loaded * work, access_bytes_loaded=k.access_bytes_loaded * work,
        sector_bytes_loaded=k.sector_bytes_loaded * work, near_reuse_bytes=k.near_reuse_bytes * work,
        alu_ops=k.alu_ops * work, sfu_ops=k.sfu_ops * work,
        dot_flops={p: f * work for p, f in k.dot_flops.items()},
        bytes_stored=k.bytes_stored * r.written, access_bytes_stored=k.access_bytes_stored * r.written,
        sector_bytes_stored=k.sector_bytes_stored * r.written,
        unique_bytes_loaded=k.unique_bytes_loaded * r.moved, unique_bytes_stored=k.unique_bytes_stored * r.written)


def _heaviest(k: KernelLaunch, work: float) -> dict:
    """The heaviest program at the full size. In a balanced grid it stays as it was (more programs,
    the same work each); where one program holds a large share of the launch's work (all of it in
    program 0, or in the last one), that share is kept, so the program grows with the work."""
    total = k.bytes_loaded + k.bytes_stored
    mean = total / max(1.0, k.executed)
    if total <= 0 or k.max_program_bytes <= IMBALANCED * mean:
        return {}
    grow = max(1.0, work)  # the launch's work grows by ``work``; this program keeps its share of it
    return {"max_program_bytes": k.max_program_bytes * grow, "max_program_ops": k.max_program_ops * grow,
            "max_program_dot_flops": k.max_program_dot_flops * grow}


def scale(records, r: Ratios) -> list[Record]:
    """The candidate's small-size records grown to the full size by the reference's ``Ratios``."""
    out: list[Record] = []
    for rec in parse_records(records):
        if isinstance(rec, KernelLaunch):
            out.append(_scale_kernel(rec, r))
        else:
            grow = r.flops if rec.op_class in TENSOR_CLASSES else r.moved
            out.append(replace(rec, flops=rec.flops * grow, bytes_read=rec.bytes_read * r.moved,
                               bytes_written=rec.bytes_written * r.written))
    return out


def _names(records: Sequence[Record]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for rec in records:
        if isinstance(rec, KernelLaunch):
            counts[rec.name] = counts.get(rec.name, 0) + rec.count
    return sorted(counts.items())


def _work(records: Sequence[Record]) -> tuple[float, float]:
    moved = computed = 0.0
    for rec in records:
        if isinstance(rec, KernelLaunch):
            moved += rec.bytes_loaded + rec.bytes_stored
            computed += rec.alu_ops + rec.sfu_ops + sum(rec.dot_flops.values())
        else:
            moved += rec.bytes_read + rec.bytes_written
            computed += rec.flops
    return moved, computed


def cross_check(sampled, scaled) -> tuple[list[Record], list[str]]:
    """The records to price and the flags: the sampled full-size ones unless they hide work."""
    sampled, scaled = parse_records(sampled), parse_records(scaled)
    flags = [LAUNCHES_DIFFER] if _names(sampled) != _names(scaled) else []
    (moved, computed), (moved_scaled, computed_scaled) = _work(sampled), _work(scaled)
    if moved < DEFICIT * moved_scaled or computed < DEFICIT * computed_scaled:
        return scaled, flags + [WORK_INCONSISTENT]
    return sampled, flags
