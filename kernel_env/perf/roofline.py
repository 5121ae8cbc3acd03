"""Modelled GPU time of recorded work: a roofline per kernel launch and per torch op, for a named GPU.

Why: on the interpreter a wall clock ranks nothing (interpreted kernels against native torch), so the
reward needs a GPU time computed from the work the sandbox recorded (``kernel_env.inside.work``). The
model is meant to order kernels the way a GPU would when the order is not in doubt (tiny blocks vs
good blocks, naive vs tiled matmul, fused vs unfused, extra HBM passes, extra launches) and to give
a speedup of the right magnitude; it is not a cycle-accurate simulator.

Assumptions:
1. Serial execution. Every torch op that moves bytes and every kernel launch is one kernel on one
   stream, back to back; times add. No overlap, no CUDA graphs, no host-side Python cost: each
   kernel pays a fixed ``GPU.launch_s`` (what CUDA events see for back-to-back launches).
2. Every kernel starts with a cold L2 (the benchmark flushes it before each timed call) and reuse
   between kernels is ignored, for the candidate and the reference alike.
3. A kernel launch takes the longest of five limits, plus its launch cost:
   - compute: ``tl.dot`` FLOPs at the dense tensor peak of their precision (fp32 inputs use TF32 as
     Triton does by default; ``ieee`` runs on CUDA cores; ``tf32x3`` costs three TF32 passes); other
     operations are one instruction per element at half the FP32 peak (the peak counts an FMA as two
     FLOPs), transcendentals and divisions ``SFU_COST`` instructions each; tensor cores and ALUs
     overlap (max, not sum). Masked-off lanes count: a GPU executes them.
   - DRAM: the launch's distinct bytes (32-byte sectors) must cross HBM once; loads that re-read data
     beyond the ``NEAR`` previous programs hit L2 with probability L2 size / footprint (a capacity
     model: pessimistic for tiled kernels whose concurrent programs share panels, which is why grouped
     program orders, measured as near reuse, are cheaper).
   - L2: every sector a program touches crosses L2 -> SM once if the program's distinct footprint
     fits its share of L1 (``L1_CACHE_SHARE`` of L1 over the resident programs), else once per
     access; stores always go to L2 (L1 is write-through). This is what makes uncoalesced (strided)
     access and scalar-per-program kernels slow even when DRAM traffic is small.
   - programs: programs run in waves of SMs x resident programs per SM (limited by the warp and block
     slots of ``GPU``, at the launch's ``num_warps``); each wave lasts at least ``PROGRAM_S`` (one
     global-memory round trip plus scheduling). This is the cost of tiny blocks.
   - serial: the heaviest program alone on one SM (its bytes at ``SM_BANDWIDTH_SHARE`` x a fair share
     of bandwidth, its work at 1/SMs of the peaks). This is the cost of work hidden in one program.
4. Torch ops (the reference, and torch calls inside the candidate) are library kernels reaching the
   same efficiencies on their compulsory traffic (distinct inputs read once, outputs written once).
   Matmul, convolution and attention run at the tensor peak of their precision (fp32 matmul at the
   FP32 CUDA-core peak unless torch's TF32 flags were on; fp32 convolution in TF32, cuDNN's default).
   Views and allocation cost nothing; fills and copies are memory-bound kernels.
5. Efficiencies (fractions of peak reached in practice): ``MEMORY_EFFICIENCY`` of HBM bandwidth for
   streaming kernels, ``TENSOR_EFFICIENCY`` of tensor peak and ``SIMT_EFFICIENCY`` of CUDA-core peak
   for well-shaped problems. The same factors apply to both sides, so the speedup reflects work, not
   an assumed advantage of one side.
Ignored: register pressure and shared-memory limits on occupancy, bank conflicts, tile quantization
of small problems, clock boost and power limits, PCIe, and everything that needs values (sparsity,
early exits) beyond what the recorded run did.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .gpus import GPU
from .gpus import gpu as gpu_spec
from .records import KernelLaunch, Record, TorchOp, parse_records

MEMORY_EFFICIENCY = 0.85  # streaming copies reach ~85-90% of HBM peak on these parts (BabelStream-class tests)
TENSOR_EFFICIENCY = 0.75  # large cuBLAS/cuDNN problems reach ~70-80% of dense tensor peak
SIMT_EFFICIENCY = 0.75
SFU_COST = 4  # instructions per transcendental or division (SFU throughput is 1/8 of FP32; some are fused)
PROGRAM_S = 1e-6  # shortest life of a wave of programs (estimate: DRAM latency ~0.5-0.8 us plus issue)
SM_BANDWIDTH_SHARE = 4  # one busy SM draws up to ~4x its 1/SMs share of HBM bandwidth (estimate)
L1_CACHE_SHARE = 0.5  # of L1 assumed left as cache beside shared memory
TENSOR_CLASSES = ("matmul", "conv", "attention")


@dataclass(frozen=True)
class Row:
    """One priced item: a kernel launch or a torch op (``count`` of them when merged)."""

    name: str
    kind: str  # "kernel" | "torch" | "floor"
    flops: float
    bytes: float  # modelled DRAM bytes
    us: float
    bound: str  # "memory" | "compute" | "launch"
    count: int = 1
    detail: dict = field(default_factory=dict)  # the limits in microseconds, for the explain view


@dataclass(frozen=True)
class Breakdown:
    gpu: str
    runtime_us: float
    bound: str
    rows: tuple[Row, ...]

    def to_dict(self) -> dict:
        return {"gpu": self.gpu, "runtime_us": self.runtime_us, "bound": self.bound,
                "rows": [asdict(r) for r in self.rows]}


def _bound(limits: dict[str, float], launch_s: float) -> str:
    """The label of the largest limit; "launch" when the fixed launch cost outweighs the body."""
    label, longest = max(limits.items(), key=lambda kv: kv[1])
    if launch_s >= longest:
        return "launch"
    return {"dram": "memory", "l2": "memory", "serial_memory": "memory", "programs": "launch"}.get(label, "compute")


def _dot_rate(g: GPU, precision: str) -> float:
    if precision == "tf32x3":
        return g.peak("tf32") / 3
    return g.peak(precision)


def price_kernel(k: KernelLaunch, g: GPU) -> Row:
    n = k.count
    per_launch = max(1.0, k.programs / n)
    bandwidth = g.hbm_bandwidth * MEMORY_EFFICIENCY
    instructions = g.peak("fp32") / 2 * SIMT_EFFICIENCY
    resident = max(1, min(g.max_blocks_per_sm, g.max_warps_per_sm // max(1, k.num_warps)))

    fits_l1 = k.sector_bytes_loaded / max(1.0, k.programs) <= g.l1_bytes * L1_CACHE_SHARE / resident
    l2_loads = k.sector_bytes_loaded if fits_l1 else max(k.sector_bytes_loaded, k.access_bytes_loaded)
    l2_bytes = l2_loads + k.access_bytes_stored
    unique_loaded = min(k.unique_bytes_loaded, k.sector_bytes_loaded)
    unique = unique_loaded + min(k.unique_bytes_stored, k.access_bytes_stored)
    far = max(0.0, l2_loads - unique_loaded - k.near_reuse_bytes)
    miss = 0.0 if unique <= g.l2_bytes else 1.0 - g.l2_bytes / unique
    dram = unique + far * miss

    dot_s = sum(f / (_dot_rate(g, p) * TENSOR_EFFICIENCY) for p, f in k.dot_flops.items())
    alu_s = (k.alu_ops + SFU_COST * k.sfu_ops) / instructions
    main = max(k.dot_flops, key=k.dot_flops.get) if k.dot_flops else "fp32"
    waves = math.ceil(per_launch / (g.sms * resident))
    limits = {
        "compute": max(dot_s, alu_s),
        "dram": dram / bandwidth,
        "l2": l2_bytes / g.l2_bandwidth,
        "programs": n * waves * PROGRAM_S,
        "serial_memory": n * k.max_program_bytes / (bandwidth / g.sms * SM_BANDWIDTH_SHARE),
        "serial_compute": n * max(k.max_program_ops * g.sms / instructions,
                                  k.max_program_dot_flops * g.sms / (_dot_rate(g, main) * TENSOR_EFFICIENCY)),
    }
    launch_s = n * g.launch_s
    body = max(limits.values())
    detail = {name: s * 1e6 for name, s in limits.items()}
    detail.update(l2_bytes=l2_bytes, l2_miss=miss, program_count=k.programs, extrapolation=k.extrapolation)
    flops = k.alu_ops + k.sfu_ops + sum(k.dot_flops.values())
    return Row(k.name, "kernel", flops, dram, (body + launch_s) * 1e6, _bound(limits, launch_s), n, detail)


def price_torch(op: TorchOp, g: GPU) -> Row | None:
    """None for ops that launch nothing (views, allocation)."""
    moved = op.bytes_read + op.bytes_written
    if op.op_class in ("view", "alloc") or (op.category == "glue" and moved == 0):
        return None
    if op.op_class in TENSOR_CLASSES:
        simt = op.precision in ("fp32", "fp64")
        rate = g.peak(op.precision) * (SIMT_EFFICIENCY if simt else TENSOR_EFFICIENCY)
    else:
        rate = g.peak("fp64" if op.precision == "fp64" else "fp32") / 2 * SIMT_EFFICIENCY
    limits = {"compute": op.flops / rate, "dram": moved / (g.hbm_bandwidth * MEMORY_EFFICIENCY)}
    launch_s = op.count * g.launch_s
    detail = {name: s * 1e6 for name, s in limits.items()}
    return Row(op.name, "torch", op.flops, moved, (max(limits.values()) + launch_s) * 1e6,
               _bound(limits, launch_s), op.count, detail)


def overall_bound(rows) -> str:
    """The bound that accounts for most of the time ("launch" for an empty breakdown)."""
    share: dict[str, float] = {}
    for r in rows:
        share[r.bound] = share.get(r.bound, 0.0) + r.us
    return max(share, key=share.get) if share else "launch"


def price(records, gpu: str | GPU | None = None) -> Breakdown:
    """Price validated records (or raw ones, validated here) on ``gpu`` (default ``DEFAULT_GPU``)."""
    g = gpu_spec(gpu)
    parsed: list[Record] = parse_records(records)
    rows = []
    for r in parsed:
        row = price_kernel(r, g) if isinstance(r, KernelLaunch) else price_torch(r, g)
        if row is not None:
            rows.append(row)
    return Breakdown(g.name, sum(r.us for r in rows), overall_bound(rows), tuple(rows))
