"""The modelled comparison of a candidate with its reference: what the result, reward and feedback use.

Why a separate step: pricing (``roofline.price``) knows one side; the speedup, the explain rows and
the floors against forged or hollow records need both. The floor: a forward must at least write its
outputs (``output_bytes``, from the reference's full-size trace), so records that claim less work
than that are priced as if the outputs were written, and flagged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .gpus import GPU
from .gpus import gpu as gpu_spec
from .records import KernelLaunch, parse_records
from .roofline import MEMORY_EFFICIENCY, Breakdown, Row, overall_bound, price

#: Flag: the candidate's records write fewer bytes than the task's outputs hold.
WORK_BELOW_OUTPUT = "work_below_output"


@dataclass(frozen=True)
class Modelled:
    gpu: str
    runtime_us: float
    ref_runtime_us: float
    speedup: float
    bound: str
    rows: tuple[Row, ...]
    ref_rows: tuple[Row, ...]
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"gpu": self.gpu, "runtime_us": self.runtime_us, "ref_runtime_us": self.ref_runtime_us,
                "speedup": self.speedup, "bound": self.bound, "flags": list(self.flags),
                "rows": [asdict(r) for r in self.rows], "ref_rows": [asdict(r) for r in self.ref_rows]}

    def explain(self, top: int = 6) -> str:
        """The heaviest rows of both sides, one line each: what the feedback message can show."""
        head = (f"modelled on {self.gpu}: {self.runtime_us:.1f} us vs reference {self.ref_runtime_us:.1f} us "
                f"(speedup {self.speedup:.2f}x, {self.bound}-bound)")
        lines = [head]
        for label, rows in (("yours", self.rows), ("reference", self.ref_rows)):
            for r in sorted(rows, key=lambda r: -r.us)[:top]:
                times = f" x{r.count}" if r.count > 1 else ""
                lines.append(f"  {label:9s} {r.kind:6s} {r.name[:48]:48s}{times} {r.us:10.1f} us  {r.bound:7s} "
                             f"{r.bytes / 1e6:10.2f} MB {r.flops / 1e9:10.3f} GFLOP")
        return "\n".join(lines)


def _written(records) -> float:
    return sum(r.unique_bytes_stored if isinstance(r, KernelLaunch) else r.bytes_written for r in records)


def modelled(candidate, reference, gpu: str | GPU | None = None, output_bytes: float = 0.0,
             flags=()) -> Modelled:
    """Compare candidate and reference records (raw or parsed) on ``gpu``; ``flags`` are carried
    along (e.g. from ``scaling.cross_check``)."""
    g = gpu_spec(gpu)
    cand_records = parse_records(candidate)
    cand: Breakdown = price(cand_records, g)
    ref: Breakdown = price(reference, g)
    rows = list(cand.rows)
    flags = list(flags)
    missing = output_bytes - _written(cand_records)
    if missing > 0:
        flags.append(WORK_BELOW_OUTPUT)
        us = missing / (g.hbm_bandwidth * MEMORY_EFFICIENCY) * 1e6
        rows.append(Row("floor: outputs not written by recorded work", "floor", 0.0, missing, us, "memory"))
    runtime = sum(r.us for r in rows)
    speedup = ref.runtime_us / runtime if runtime > 0 else 0.0
    return Modelled(g.name, runtime, ref.runtime_us, speedup, overall_bound(rows), tuple(rows), ref.rows,
                    tuple(flags))
