"""Work records as the trusted side accepts them: typed, bounded, checked field by field.

The records come from the sandbox, where the candidate could have replaced the recorder, so nothing
in them is believed without a check: every field must be present and of its type, every number finite,
non-negative and below a bound, every list short, and nothing else may be there. A record that fails
raises ``RecordError``; callers treat that like a forged report (no modelled time), never as zero work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

MAX_RECORDS = 50_000
MAX_NAME = 200
MAX_NUMBER = 1e21  # far above any real count (a zettaFLOP), far below float trouble
PRECISIONS = ("fp64", "fp32", "tf32", "tf32x3", "fp16", "bf16", "fp8", "int8")
CATEGORIES = ("glue", "compute")
OP_CLASSES = ("view", "alloc", "fill", "copy", "matmul", "conv", "attention", "norm", "reduction", "pool",
              "elementwise")
EXTRAPOLATIONS = ("full", "sampled", "scaled")


class RecordError(ValueError):
    """A work record that does not follow the schema."""


@dataclass(frozen=True)
class TorchOp:
    """One aten op (or ``count`` of them, summed) as ``kernel_env.inside.work.AtenWork`` records it."""

    name: str
    category: str
    op_class: str
    flops: float
    bytes_read: float
    bytes_written: float
    dtype: str
    precision: str
    count: int = 1
    kind: str = "torch"


@dataclass(frozen=True)
class KernelLaunch:
    """One own-kernel launch (or ``count`` merged) as ``kernel_env.inside.work.KernelWork`` records it."""

    name: str
    grid: tuple[int, int, int]
    programs: float
    executed: float
    num_warps: int
    extrapolation: str
    bytes_loaded: float
    bytes_stored: float
    access_bytes_loaded: float
    access_bytes_stored: float
    sector_bytes_loaded: float
    sector_bytes_stored: float
    unique_bytes_loaded: float
    unique_bytes_stored: float
    near_reuse_bytes: float
    alu_ops: float
    sfu_ops: float
    dot_flops: dict = field(default_factory=dict)
    max_program_bytes: float = 0.0
    max_program_ops: float = 0.0
    max_program_dot_flops: float = 0.0
    count: int = 1
    kind: str = "kernel"


Record = TorchOp | KernelLaunch


def _number(value, where: str, integer: bool = False) -> float:
    if type(value) is bool or not isinstance(value, (int, float)):
        raise RecordError(f"{where}: not a number: {value!r}")
    if not math.isfinite(value) or value < 0 or value > MAX_NUMBER:
        raise RecordError(f"{where}: out of range: {value!r}")
    if integer and value != int(value):
        raise RecordError(f"{where}: not an integer: {value!r}")
    return int(value) if integer else float(value)


def _text(value, where: str, choices=None) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise RecordError(f"{where}: not a short string: {value!r}"[:300])
    if choices is not None and value not in choices:
        raise RecordError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _torch(raw: dict, where: str) -> TorchOp:
    return TorchOp(
        name=_text(raw["name"], f"{where}.name"),
        category=_text(raw["category"], f"{where}.category", CATEGORIES),
        op_class=_text(raw["op_class"], f"{where}.op_class", OP_CLASSES),
        flops=_number(raw["flops"], f"{where}.flops"),
        bytes_read=_number(raw["bytes_read"], f"{where}.bytes_read"),
        bytes_written=_number(raw["bytes_written"], f"{where}.bytes_written"),
        dtype=_text(raw["dtype"], f"{where}.dtype"),
        precision=_text(raw["precision"], f"{where}.precision", PRECISIONS),
        count=max(1, _number(raw["count"], f"{where}.count", integer=True)),
    )


def _kernel(raw: dict, where: str) -> KernelLaunch:
    grid = raw["grid"]
    if not isinstance(grid, list) or len(grid) != 3:
        raise RecordError(f"{where}.grid: not three integers")
    dots = raw["dot_flops"]
    if not isinstance(dots, dict) or not set(dots) <= set(PRECISIONS):
        raise RecordError(f"{where}.dot_flops: keys must be among {', '.join(PRECISIONS)}")
    numbers = {f.name: _number(raw[f.name], f"{where}.{f.name}") for f in fields(KernelLaunch)
               if f.type == "float"}
    launch = KernelLaunch(
        name=_text(raw["name"], f"{where}.name"),
        grid=tuple(_number(g, f"{where}.grid", integer=True) for g in grid),
        num_warps=_number(raw["num_warps"], f"{where}.num_warps", integer=True),
        extrapolation=_text(raw["extrapolation"], f"{where}.extrapolation", EXTRAPOLATIONS),
        dot_flops={p: _number(v, f"{where}.dot_flops.{p}") for p, v in dots.items()},
        count=max(1, _number(raw["count"], f"{where}.count", integer=True)),
        **numbers,
    )
    if not 1 <= launch.num_warps <= 64:
        raise RecordError(f"{where}.num_warps: {launch.num_warps} is not a warp count")
    if launch.executed > launch.programs:
        raise RecordError(f"{where}: executed {launch.executed} of {launch.programs} programs")
    return launch


_SCHEMAS = {"torch": (TorchOp, _torch), "kernel": (KernelLaunch, _kernel)}


def parse_records(raw, max_records: int = MAX_RECORDS) -> list[Record]:
    """Typed records from what the sandbox sent; raises ``RecordError`` on anything off-schema."""
    if isinstance(raw, (TorchOp, KernelLaunch)):
        return [raw]
    if not isinstance(raw, list):
        raise RecordError("work records must be a list")
    if len(raw) > max_records:
        raise RecordError(f"{len(raw)} work records (at most {max_records})")
    out: list[Record] = []
    for i, item in enumerate(raw):
        if isinstance(item, (TorchOp, KernelLaunch)):
            out.append(item)
            continue
        where = f"record {i}"
        if not isinstance(item, dict) or item.get("kind") not in _SCHEMAS:
            raise RecordError(f"{where}: not a torch or kernel record")
        cls, parse = _SCHEMAS[item["kind"]]
        expected = {f.name for f in fields(cls)}
        if set(item) != expected:
            missing, extra = sorted(expected - set(item)), sorted(set(item) - expected)
            raise RecordError(f"{where}: missing {missing}, unexpected {extra}"[:300])
        out.append(parse(item, where))
    return out
