"""Recorded work of a forward call, inside the sandbox: torch ops and own-kernel launches.

Why: under the interpreter every kernel runs on NumPy, so a wall clock cannot rank kernels. A GPU pays
for work: FLOPs, bytes through its memory hierarchy, programs launched. Two recorders count that work
where it happens and return plain dicts; the trusted side (``kernel_env.perf``) validates and prices
them for a named GPU. Nothing here is trusted: the candidate shares this process.

``AtenWork`` (a ``TorchDispatchMode``) records every aten op: FLOPs, bytes read/written, dtype and a
category, "glue" (allocation, views, copies, fills: bytes, no compute) or "compute". It works on meta
tensors, so the reference is traced at the benchmark size without memory (:func:`trace_reference`).
FLOPs of matmul, convolution and attention come from torch's own registry
(``torch.utils.flop_counter.flop_registry``): its formulas are maintained with the ops (grouped and
transposed convolution, GQA attention) and take shapes only, so real and meta tensors agree.

``KernelWork`` hooks Triton's interpreter (the builder's memory, arithmetic and dot methods, the
reductions, and the grid loop) and records per launch: programs, bytes requested by active lanes of
``tl.load``/``tl.store``, 32-byte sectors each program touches (so uncoalesced and repeated access
show), an estimate of the distinct bytes of the launch, reuse between neighbouring programs, ALU,
transcendental and ``tl.dot`` work, and the heaviest program. Masked-off lanes count for arithmetic
(a GPU executes them) but not for memory.

Extrapolation to the benchmark size. Recording at the small size runs every program. At the full
size (``KernelWork(sample=Sampling(...))``, on full-size CPU inputs, with ``AtenWork(elide=True)``
so heavy torch ops return zeros instead of computing) each launch runs only a sample of its program
ids: the first and the last, the positions where the small-size run found unusually heavy programs
(``hints``), a contiguous run at a random start and random singles, drawn from a seed the trusted
side keeps secret. Sampled "special" programs (first, last, hinted) count as themselves; every
program not run counts as the mean of the random ones. So work hidden in program 0 or in the last
program is counted once, not multiplied, and a grid that changes with the size is sampled as it is.
Where it breaks: work concentrated at full-size positions that neither the small-size run nor the
random draw visits (missed with probability about (1 - f)^k for a share f of heavy programs and k
random draws); behaviour that depends on values (elided torch ops give zeros; full-size outputs are
never checked); kernels that run only at the full size on data-dependent paths. The trusted side
cross-checks against the small-size work scaled by the reference's ratios
(``kernel_env.perf.scaling``), which is also the fallback when full-size inputs exceed memory.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from . import steps
from .inputs import init_inputs, make_inputs

SECTOR = 32  # bytes: the unit in which NVIDIA GPUs move global memory between L2 and SMs
NEAR = 8  # a program's sectors also touched by one of the previous NEAR programs count as reuse
UNION_CAP = 1 << 22  # sector ids kept per launch for the exact distinct count; beyond, estimated
PROGRAM_SECTORS = 1 << 22  # distinct sectors tracked per program (128 MiB touched); beyond, accesses count
DOT_PRECISIONS = ("fp64", "fp32", "tf32", "tf32x3", "fp16", "bf16", "fp8", "int8")

_paused = 0  # > 0 while the interpreter's own tensor handling runs: not the candidate's work


class _Pause:
    def __enter__(self):
        global _paused
        _paused += 1

    def __exit__(self, *exc):
        global _paused
        _paused -= 1


# -- torch ops --------------------------------------------------------------------------------------

VIEWS = frozenset({
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "expand", "expand_as", "permute",
    "transpose", "t", "squeeze", "unsqueeze", "slice", "select", "alias", "detach", "lift_fresh", "narrow",
    "unfold", "split", "split_with_sizes", "chunk", "unbind", "diagonal", "view_as", "view_as_real",
    "view_as_complex", "movedim", "flatten", "unflatten", "_local_scalar_dense", "sym_size", "sym_stride",
})
ALLOCS = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"})
FILLS = frozenset({
    "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_full",
    "fill_", "zero_", "scalar_tensor", "arange", "eye", "linspace", "randn", "rand", "randint", "randn_like",
    "rand_like", "randint_like", "randperm", "normal_", "uniform_", "random_", "bernoulli_", "exponential_",
})
COPIES = frozenset({"copy_", "clone", "contiguous", "_to_copy", "to", "_copy_from", "_copy_from_and_resize", "copy"})
MATMULS = frozenset({"mm", "addmm", "bmm", "baddbmm", "_scaled_mm"})
CONVS = frozenset({"convolution", "_convolution", "cudnn_convolution", "convolution_overrideable", "_slow_conv2d_forward"})
ATTENTION = frozenset({"_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
                       "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu",
                       "_flash_attention_forward", "_efficient_attention_forward"})
#: Row-wise normalisations: a few FLOPs per element (max, subtract, exp, sum, divide ...).
NORMS = {"_softmax": 5, "_log_softmax": 5, "_safe_softmax": 5, "native_layer_norm": 8, "native_group_norm": 8,
         "native_batch_norm": 8, "_native_batch_norm_legit": 8, "_native_batch_norm_legit_no_training": 4,
         "_fused_rms_norm": 4, "logsumexp": 4}
REDUCTIONS = frozenset({
    "sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "var", "std", "var_mean", "std_mean",
    "norm", "linalg_vector_norm", "all", "any", "cumsum", "cumprod", "logcumsumexp", "nansum", "count_nonzero",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss_forward", "nll_loss2d_forward", "kl_div",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_similarity", "median", "topk", "sort",
})
POOLS = frozenset({"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
                   "avg_pool1d", "avg_pool2d", "avg_pool3d"})
ADAPTIVE_POOLS = frozenset({"_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d",
                            "adaptive_max_pool3d", "adaptive_avg_pool1d"})


def _touched(t: torch.Tensor) -> int:
    """Bytes a kernel must move to read or write ``t``: broadcast (stride-0) dimensions count once."""
    if t.numel() == 0:
        return 0
    try:
        n = math.prod(size for size, stride in zip(t.shape, t.stride()) if stride != 0)
    except (RuntimeError, NotImplementedError):  # sparse or nested layouts have no strides
        n = t.numel()
    return int(n) * t.element_size()


def _tensors(value) -> list[torch.Tensor]:
    return [x for x in tree_flatten(value)[0] if isinstance(x, torch.Tensor)]


def _precision(dtype: torch.dtype, op_class: str) -> str:
    """The arithmetic a GPU would use: fp32 matmuls run in TF32 only where torch's flags allow it."""
    if dtype == torch.float32:
        if op_class == "matmul" and (torch.backends.cuda.matmul.allow_tf32
                                     or torch.get_float32_matmul_precision() != "highest"):
            return "tf32"
        if op_class == "conv" and torch.backends.cudnn.allow_tf32:
            return "tf32"
        return "fp32"
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64", torch.int8: "int8",
            torch.uint8: "int8"}.get(dtype, "fp8" if "float8" in str(dtype) else "fp32")


def _classify(base: str) -> tuple[str, str]:
    """(category, op class) of an aten op by its base name."""
    if base in VIEWS:
        return "glue", "view"
    if base in ALLOCS:
        return "glue", "alloc"
    if base in FILLS:
        return "glue", "fill"
    if base in COPIES:
        return "glue", "copy"
    if base in MATMULS or base in ("mv", "addmv", "dot", "vdot", "addbmm"):
        return "compute", "matmul"
    if base in CONVS:
        return "compute", "conv"
    if base in ATTENTION:
        return "compute", "attention"
    if base in NORMS:
        return "compute", "norm"
    if base in REDUCTIONS:
        return "compute", "reduction"
    if base in POOLS or base in ADAPTIVE_POOLS:
        return "compute", "pool"
    return "compute", "elementwise"


def _flops(func, base: str, op_class: str, args, kwargs, out, inputs, outputs) -> int:
    from torch.utils.flop_counter import flop_registry

    formula = flop_registry.get(func.overloadpacket)
    if formula is not None:
        return int(formula(*args, **kwargs, out_val=out))
    largest_in = max((t.numel() for t in inputs), default=0)
    largest_out = max((t.numel() for t in outputs), default=0)
    if op_class == "matmul":  # mv, addmv, dot: one multiply-add per matrix element
        return 2 * largest_in
    if op_class == "norm":
        return NORMS[base] * largest_in
    if op_class == "reduction" or base in ADAPTIVE_POOLS:
        return largest_in
    if op_class == "pool":
        window = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
        return largest_out * max(1, math.prod(int(k) for k in window)) if window else largest_in
    return max(largest_out, largest_in if op_class == "elementwise" else 0)


def _meta_like(value):
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    return value


def _zeros_of(meta_out, device):
    def make(m):
        if not isinstance(m, torch.Tensor):
            return m
        try:
            return torch.empty_strided(m.shape, m.stride(), dtype=m.dtype, device=device).zero_()
        except RuntimeError:  # internally overlapping layouts
            return torch.zeros(m.shape, dtype=m.dtype, device=device)
    return tree_map(make, meta_out)


def _sdpa_shapes(q, k, v):
    """(batch, heads, length, dim) for torch's attention formula, whatever the leading dimensions."""
    def four(t):
        shape = tuple(t.shape)
        if len(shape) == 4:
            return shape
        return (math.prod(shape[:-2]) if len(shape) > 2 else 1, 1, *shape[-2:])
    return four(q), four(k), four(v)


class _Functions(TorchFunctionMode):
    """Scaled-dot-product attention as one fused op, the way a GPU runs it: without this, meta and CPU
    tensors decompose it into bmm + softmax + bmm and the reference would pay for the score matrix."""

    def __init__(self, work: AtenWork):
        super().__init__()
        self.work = work

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.nn.functional.scaled_dot_product_attention or _paused:
            return func(*args, **kwargs)
        from torch.utils.flop_counter import sdpa_flop_count

        q, k, v = (list(args) + [kwargs.get(n) for n in ("query", "key", "value")[len(args):]])[:3]
        with _Pause():
            out = func(*args, **kwargs)
        flops = sdpa_flop_count(*_sdpa_shapes(q, k, v))
        if kwargs.get("is_causal", args[5] if len(args) > 5 else False):
            flops //= 2  # fused kernels skip the masked half
        mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        read = sum(_touched(t) for t in (q, k, v, mask) if isinstance(t, torch.Tensor))
        self.work.add({"kind": "torch", "name": "aten.scaled_dot_product_attention", "category": "compute",
                       "op_class": "attention", "flops": int(flops), "bytes_read": read,
                       "bytes_written": _touched(out), "dtype": str(q.dtype).removeprefix("torch."),
                       "precision": _precision(q.dtype, "attention"), "count": 1})
        return out


class AtenWork(TorchDispatchMode):
    """Records every aten op run under it (see the module docstring). ``elide``: compute ops that do
    not mutate their arguments return zeros of the right shape instead of computing (the full-size
    candidate call, whose outputs nobody checks). After ``limit`` records, ops are summed per name."""

    def __init__(self, elide: bool = False, limit: int = 20000):
        super().__init__()
        self.elide = elide
        self.limit = limit
        self.records: list[dict] = []
        self._merged: dict[tuple, dict] = {}
        self._functions = _Functions(self)

    def __enter__(self):
        result = super().__enter__()
        self._functions.__enter__()
        return result

    def __exit__(self, *exc):
        self._functions.__exit__(*exc)
        return super().__exit__(*exc)

    def add(self, record: dict) -> None:
        if len(self.records) < self.limit:
            self.records.append(record)
            return
        key = (record["name"], record["category"], record["op_class"], record["precision"])
        merged = self._merged.get(key)
        if merged is None:
            self._merged[key] = merged = {**record, "count": 0, "flops": 0, "bytes_read": 0, "bytes_written": 0}
            self.records.append(merged)
        for name in ("count", "flops", "bytes_read", "bytes_written"):
            merged[name] += record[name]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _paused:
            return func(*args, **kwargs)
        base = func.overloadpacket.__name__
        category, op_class = _classify(base)
        out = None
        if self.elide and category == "compute" and not func._schema.is_mutable:
            try:
                meta = func(*tree_map(_meta_like, args), **tree_map(_meta_like, kwargs))
                device = next((t.device for t in _tensors((args, kwargs))), torch.device("cpu"))
                out = _zeros_of(meta, device)
            except Exception:  # noqa: BLE001 - no meta kernel, or a data-dependent shape: compute it for real
                out = None
        if out is None:
            out = func(*args, **kwargs)
        self.add(self._record(func, base, category, op_class, args, kwargs, out))
        return out

    def _record(self, func, base, category, op_class, args, kwargs, out) -> dict:
        outputs = _tensors(out)
        if op_class in ("view", "alloc"):
            read = written = 0
        else:
            if op_class == "fill":
                sources = []
            elif base == "copy_":
                sources = _tensors(args[1:2])
            else:
                sources = _tensors((args, {k: v for k, v in kwargs.items() if k != "out"}))
            read = sum(_touched(t) for t in sources)
            written = sum(_touched(t) for t in outputs)
        inputs = _tensors(args)
        flops = 0 if category == "glue" else _flops(func, base, op_class, args, kwargs, out, inputs, outputs)
        typed = outputs or inputs
        dtype = typed[0].dtype if typed else torch.float32
        return {"kind": "torch", "name": str(func), "category": category, "op_class": op_class,
                "flops": int(flops), "bytes_read": int(read), "bytes_written": int(written),
                "dtype": str(dtype).removeprefix("torch."), "precision": _precision(dtype, op_class), "count": 1}


@dataclass(frozen=True)
class Trace:
    records: list  # the reference's torch ops
    output_bytes: int  # what any forward must write at least: the floor in ``kernel_env.perf.modelled``


def trace_reference(module, init_seed: int, seed: int, dtype: torch.dtype | None = None,
                    backward: bool = False) -> Trace:
    """The task's ``Model`` at the size its program says, on meta tensors: shapes, no memory, no compute.
    A backward task's trace holds the backward's ops too, and its floor the gradients it must write.
    Raises where the model needs values (``.item()``, data-dependent shapes)."""
    with torch.device("meta"):
        torch.manual_seed(init_seed)
        model = module.Model(*init_inputs(module, init_seed))
        if dtype is not None and dtype is not torch.float32:
            model = model.to(dtype)
        inputs = make_inputs(module, seed, dtype=dtype)
        if not backward:
            with torch.no_grad(), AtenWork() as work:
                out = model(*inputs)
            return Trace(work.records, sum(_touched(t) for t in _tensors(out)))
        xs = steps.leaves(inputs)
        params = steps.reference_params(model)
        with torch.enable_grad(), AtenWork() as work:
            targets = steps.differentiated(list(_tensors(model(*xs))))
            grads = steps.gradients(targets, [torch.ones_like(t) for t in targets], xs, params)
    return Trace(work.records, sum(_touched(t) for t in (*targets, *grads)))


def input_bytes(module, seed: int, dtype: torch.dtype | None = None) -> int:
    """Bytes of the task's inputs at its program's size, measured on meta tensors (before allocating)."""
    with torch.device("meta"):
        return sum(x.numel() * x.element_size() for x in make_inputs(module, seed, dtype=dtype)
                   if isinstance(x, torch.Tensor))


# -- kernel launches --------------------------------------------------------------------------------

#: NumPy functions the interpreter uses for transcendental and division units (SFU-class work).
_SFU_OPS = frozenset({np.exp, np.exp2, np.log, np.log2, np.sin, np.cos, np.sqrt, np.divide, np.fmod})
#: Per-program counters, in this order: bytes of active lanes; distinct sectors of each access summed
#: (what an SM asks of its L1); distinct sectors of the program (what reaches L2 if L1 keeps them);
#: ALU and SFU operations; dot FLOPs per precision.
FIELDS = ("bytes_loaded", "bytes_stored", "access_loaded", "access_stored", "sectors_loaded", "sectors_stored",
          "alu", "sfu") + tuple(f"dot_{p}" for p in DOT_PRECISIONS)
_REQUESTED, _ACCESS, _SECTORS = 0, 2, 4  # + direction (0 load, 1 store)
_ALU, _SFU = FIELDS.index("alu"), FIELDS.index("sfu")
_DOT = {p: FIELDS.index(f"dot_{p}") for p in DOT_PRECISIONS}
#: Launch-record fields that add up when launches past ``KernelWork.max_launches`` are merged.
SUMMED = ("programs", "executed", "bytes_loaded", "bytes_stored", "access_bytes_loaded", "access_bytes_stored",
          "sector_bytes_loaded", "sector_bytes_stored", "unique_bytes_loaded", "unique_bytes_stored",
          "near_reuse_bytes", "alu_ops", "sfu_ops")


@dataclass(frozen=True)
class Sampling:
    """How a full-size recording samples program ids (see the module docstring). ``seed`` should be
    secret to the candidate; ``hints`` is ``KernelWork.hints()`` from the small-size recording."""

    seed: int
    hints: tuple = ()
    singles: int = 8
    run: int = 8
    full_grid: int = 64  # grids up to this many programs run whole


def _dot_precision(a, input_precision) -> str:
    name = getattr(a.dtype, "name", str(a.dtype))
    if name in ("fp16", "bf16"):
        return name
    if name.startswith("fp8"):
        return "fp8"
    if name in ("int8", "uint8"):
        return "int8"
    if name == "fp64":
        return "fp64"
    mode = getattr(input_precision, "name", str(input_precision)).upper()
    return {"TF32": "tf32", "TF32X3": "tf32x3"}.get(mode, "fp32")


class _Launch:
    """One kernel launch being recorded: the plan of program ids and the counters of those run."""

    def __init__(self, name: str, ordinal: int, storages: list[tuple[int, int]], num_warps: int,
                 sampling: Sampling | None, hints: list[int], hint_programs: int):
        self.name, self.ordinal, self.num_warps = name, ordinal, num_warps
        self.starts = np.array([s for s, _ in storages], dtype=np.uint64)
        self.ends = np.array([e for _, e in storages], dtype=np.uint64)
        self.capacity = np.array([(e - 1) // SECTOR - s // SECTOR + 1 for s, e in storages] + [np.inf])  # sectors spanned
        self.sampling, self.hints, self.hint_programs = sampling, hints, hint_programs
        self.counting = True
        self.grid = (1, 1, 1)
        self.order: list[int] = []
        self.special: set[int] = set()
        self.vectors: dict[int, np.ndarray] = {}
        self.unique: dict[int, np.ndarray] = {}  # per program: distinct sectors per storage, loads then stores
        self.union: list[list[np.ndarray]] = [[], []]
        self.union_size = 0
        self.recent: deque = deque(maxlen=NEAR)
        self.near_hits = self.near_seen = 0
        self.lid = -1
        self.vec = None
        self.sectors: list[list[np.ndarray] | None] = [[], []]  # this program's, per direction; None past the cap
        self.held = [0, 0]

    # planning ----------------------------------------------------------------------------------
    def plan(self, grid) -> int:
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        self.grid = grid
        total = grid[0] * grid[1] * grid[2]
        s = self.sampling
        if s is None or total <= s.full_grid:
            self.order = list(range(total))
            return total
        special = {0, total - 1}
        for h in self.hints:  # the same program id, the same distance from the end, the same share of the grid
            relative = h * total // max(1, self.hint_programs)
            special |= {p for p in (h, total - self.hint_programs + h, relative - 1, relative, relative + 1)
                        if 0 <= p < total}
        rng = np.random.default_rng([s.seed, self.ordinal, len(self.name), total])
        start = int(rng.integers(1, max(2, total - s.run)))
        chosen = set(range(start, min(total - 1, start + s.run)))
        while len(chosen - special) < s.run + s.singles and len(chosen | special) < total:
            chosen.add(int(rng.integers(0, total)))
        self.special = special
        self.order = sorted(special | chosen)
        return len(self.order)

    def coords(self, lid: int) -> tuple[int, int, int]:
        gx, gy, _ = self.grid
        return lid % gx, (lid // gx) % gy, lid // (gx * gy)

    # counting ----------------------------------------------------------------------------------
    def start(self, index: int) -> int:
        self.finish_program()
        lid = self.order[index]
        if lid != self.lid + 1:
            self.recent.clear()
        self.lid = lid
        self.vec = np.zeros(len(FIELDS))
        return lid

    def access(self, direction: int, ptrs, mask, bytes_each: int) -> None:
        data = ptrs.data
        addrs = data[np.broadcast_to(mask.data, data.shape)] if mask is not None else data.reshape(-1)
        self.vec[_REQUESTED + direction] += addrs.size * bytes_each
        if not addrs.size:
            return
        sectors = np.unique(addrs.astype(np.uint64, copy=False) // SECTOR)
        self.vec[_ACCESS + direction] += sectors.size * SECTOR
        held = self.sectors[direction]
        if held is None:
            return
        held.append(sectors)
        self.held[direction] += sectors.size
        if self.held[direction] > PROGRAM_SECTORS:  # compact; give up on distinctness past the cap
            merged = np.unique(np.concatenate(held))
            self.sectors[direction] = [merged] if merged.size <= PROGRAM_SECTORS else None
            self.held[direction] = merged.size

    def finish_program(self) -> None:
        if self.vec is None:
            return
        per_storage = []
        outside = len(self.starts)
        for direction in (0, 1):
            held = self.sectors[direction]
            if held is None:  # too many to track: every access counts as distinct, uncapped
                self.vec[_SECTORS + direction] = self.vec[_ACCESS + direction]
                counts = np.zeros(outside + 1)
                counts[outside] = self.vec[_ACCESS + direction] / SECTOR
                per_storage.append(counts)
                self.union_size = UNION_CAP
                continue
            sectors = np.unique(np.concatenate(held)) if held else np.zeros(0, dtype=np.uint64)
            self.vec[_SECTORS + direction] = sectors.size * SECTOR
            which = self._storage_of(sectors * SECTOR)  # storages start sector-aligned (allocator alignment)
            per_storage.append(np.bincount(which, minlength=outside + 1))
            if self.union_size < UNION_CAP:
                self.union[direction].append(sectors * (outside + 1) + which.astype(np.uint64))
                self.union_size += sectors.size
            if direction == 0:
                if self.recent:
                    self.near_hits += int(np.isin(sectors, np.concatenate(self.recent)).sum())
                    self.near_seen += sectors.size
                self.recent.append(sectors)
        self.vectors[self.lid] = self.vec
        self.unique[self.lid] = np.concatenate(per_storage)
        self.vec, self.sectors, self.held = None, [[], []], [0, 0]

    def _storage_of(self, addrs: np.ndarray) -> np.ndarray:
        """Index of the argument storage holding each address; ``len(starts)`` for none of them."""
        outside = len(self.starts)
        if not outside:
            return np.zeros(addrs.size, dtype=np.int64)
        which = np.searchsorted(self.starts, addrs, side="right").astype(np.int64) - 1
        inside = (which >= 0) & (addrs < self.ends[np.maximum(which, 0)])
        return np.where(inside, which, outside)

    # the record --------------------------------------------------------------------------------
    def record(self) -> dict:
        self.finish_program()
        total = self.grid[0] * self.grid[1] * self.grid[2]
        run = len(self.vectors)
        lids = sorted(self.vectors)
        vectors = np.array([self.vectors[i] for i in lids]).reshape(run, len(FIELDS))
        unique = np.array([self.unique[i] for i in lids]).reshape(run, -1)
        randoms = [k for k, i in enumerate(lids) if i not in self.special]
        n_storages = len(self.starts) + 1
        if run == total:
            sums = vectors.sum(axis=0)
            distinct = self._distinct(n_storages) if self.union_size < UNION_CAP else unique.sum(axis=0)
            extrapolation = "full"
        else:
            rest = total - run
            sums = vectors.sum(axis=0) + rest * vectors[randoms].mean(axis=0)
            executed = self._distinct(n_storages) if self.union_size < UNION_CAP else unique.sum(axis=0)
            distinct = executed + rest * unique[randoms].mean(axis=0)
            extrapolation = "sampled"
        distinct = np.minimum(distinct, np.tile(self.capacity, 2)) * SECTOR  # no more than the storages hold
        near = self.near_hits / self.near_seen if self.near_seen else 0.0
        heaviest = vectors.max(axis=0) if run else np.zeros(len(FIELDS))
        return {
            "kind": "kernel", "name": self.name, "grid": list(self.grid), "programs": total, "executed": run,
            "num_warps": self.num_warps, "extrapolation": extrapolation, "count": 1,
            "bytes_loaded": float(sums[_REQUESTED]), "bytes_stored": float(sums[_REQUESTED + 1]),
            "access_bytes_loaded": float(sums[_ACCESS]), "access_bytes_stored": float(sums[_ACCESS + 1]),
            "sector_bytes_loaded": float(sums[_SECTORS]), "sector_bytes_stored": float(sums[_SECTORS + 1]),
            "unique_bytes_loaded": float(distinct[:n_storages].sum()),
            "unique_bytes_stored": float(distinct[n_storages:].sum()),
            "near_reuse_bytes": float(near * sums[_SECTORS]),
            "alu_ops": float(sums[_ALU]), "sfu_ops": float(sums[_SFU]),
            "dot_flops": {p: float(sums[i]) for p, i in _DOT.items() if sums[i]},
            "max_program_bytes": float(heaviest[_SECTORS] + heaviest[_ACCESS + 1]),
            "max_program_ops": float(heaviest[_ALU] + heaviest[_SFU]),
            "max_program_dot_flops": float(sum(heaviest[i] for i in _DOT.values())),
        }

    def _distinct(self, n_storages: int) -> np.ndarray:
        """Distinct sectors per storage over the programs run: loads, then stores."""
        counts = []
        for direction in (0, 1):
            keys = np.unique(np.concatenate(self.union[direction])) if self.union[direction] else np.zeros(0, np.uint64)
            counts.append(np.bincount((keys % n_storages).astype(np.int64), minlength=n_storages))
        return np.concatenate(counts).astype(float)

    def heavy(self, top: int = 4) -> list[int]:
        """Programs (other than first and last) doing more than twice the mean work: sampling hints."""
        total = len(self.vectors)
        if total < 3:
            return []
        weight = {i: float(v[_REQUESTED] + v[_REQUESTED + 1] + v[_ALU] + v[_SFU] + sum(v[j] for j in _DOT.values()))
                  for i, v in self.vectors.items()}
        mean = sum(weight.values()) / total
        inner = sorted((i for i in weight if 0 < i < total - 1 and weight[i] > 2 * mean), key=lambda i: -weight[i])
        return inner[:top]


# The interpreter objects patched while a KernelWork is active; each wrapper is inert without one.
_active: KernelWork | None = None
_current: _Launch | None = None


def _storages(values) -> list[tuple[int, int]]:
    spans = {}
    for value in tree_flatten(list(values))[0]:
        base = getattr(value, "base", None)
        tensor = value if isinstance(value, torch.Tensor) else base if isinstance(base, torch.Tensor) else None
        if tensor is not None and tensor.device.type == "cpu":
            storage = tensor.untyped_storage()
            spans[storage.data_ptr()] = storage.data_ptr() + storage.nbytes()
    return sorted(spans.items())


def _count(kind: str):
    """An 'after' hook for builder methods: how the call's result adds to the running program."""
    def alu(launch, args, out):
        launch.vec[_ALU] += out.data.size

    def unary(launch, args, out):
        launch.vec[_SFU if args[-1] in _SFU_OPS else _ALU] += out.data.size

    def binary(launch, args, out):
        sfu = args[-1] in _SFU_OPS and np.issubdtype(out.data.dtype, np.floating)
        launch.vec[_SFU if sfu else _ALU] += out.data.size

    def sfu(launch, args, out):
        launch.vec[_SFU] += out.data.size

    def load(launch, args, out):
        ptrs, mask = args[0], args[1]
        launch.access(0, ptrs, mask, _element_bytes(ptrs))

    def store(launch, args, out):
        ptrs, mask = args[0], args[2]
        launch.access(1, ptrs, mask, _element_bytes(ptrs))

    def atomic(launch, args, out):  # rmw(op, ptr, val, mask, ...) or cas(ptr, cmp, val, ...)
        ptrs, mask = (args[1], args[3]) if len(args) == 6 else (args[0], None)
        for direction in (0, 1):
            launch.access(direction, ptrs, mask, _element_bytes(ptrs))

    def dot(launch, args, out):
        a, b = args[0], args[1]
        m, k = a.data.shape[-2:]
        batch = math.prod(a.data.shape[:-2])
        launch.vec[_DOT[_dot_precision(a, args[3])]] += 2.0 * batch * m * k * b.data.shape[-1]

    def dot_scaled(launch, args, out):
        launch.vec[_DOT["fp8"]] += 2.0 * out.data.size * args[0].data.shape[-1]

    return {"alu": alu, "unary": unary, "binary": binary, "sfu": sfu, "load": load, "store": store,
            "atomic": atomic, "dot": dot, "dot_scaled": dot_scaled}[kind]


def _element_bytes(ptrs) -> int:
    return max(1, ptrs.get_element_ty().primitive_bitwidth // 8)


BUILDER_HOOKS = {
    "create_masked_load": "load", "create_masked_store": "store", "create_atomic_rmw": "atomic",
    "create_atomic_cas": "atomic", "binary_op": "binary", "unary_op": "unary", "ternary_op": "alu",
    "create_fma": "alu", "create_fabs": "alu", "create_idiv": "alu", "create_umulhi": "alu", "cast_impl": "alu",
    "create_fp_to_fp": "alu", "create_addptr": "alu", "create_erf": "sfu", "create_rsqrt": "sfu",
    "create_extern_elementwise": "sfu",  # libdevice math, where interpreter_compat provides it
    "create_dot": "dot", "create_dot_scaled": "dot_scaled",
}


class _Patches:
    """Attributes replaced while recording, put back on exit, only where nobody replaced them since."""

    def __init__(self):
        self._undo: list[tuple[object, str, bool, object, object]] = []

    def set(self, obj, name: str, value) -> None:
        own = name in vars(obj)
        self._undo.append((obj, name, own, vars(obj).get(name), value))
        setattr(obj, name, value)

    def restore(self) -> None:
        while self._undo:
            obj, name, own, old, ours = self._undo.pop()
            if vars(obj).get(name) is not ours:
                continue  # someone patched over us; our wrapper stays inert inside their chain
            if own:
                setattr(obj, name, old)
            else:
                delattr(obj, name)


def _through(obj, name: str):
    """Call what ``obj.name`` is at call time, so a later class-level patch by someone else still runs."""
    if name in vars(obj):
        return vars(obj)[name]
    return lambda *args, **kwargs: getattr(type(obj), name)(obj, *args, **kwargs)


class KernelWork:
    """Records the work of every interpreted kernel launch while active (see the module docstring).
    Only one can be active; use it only around calls that are not timed."""

    def __init__(self, sample: Sampling | None = None, max_launches: int = 4096, max_ops: int | None = None):
        self.sample = sample
        self.max_launches = max_launches
        self.max_ops = max_ops  # interpreted block operations allowed: a budget that does not depend on load
        self.ops = 0
        self.records: list[dict] = []
        self._hints: list[dict] = []
        self._ordinals: dict[str, int] = {}
        self._merged: dict[str, dict] = {}
        self._patches = _Patches()

    def __enter__(self) -> Self:
        global _active
        if _active is not None:
            raise RuntimeError("a KernelWork is already recording")
        from triton.runtime import interpreter

        builder = interpreter.interpreter_builder
        for name, kind in BUILDER_HOOKS.items():
            if hasattr(builder, name):
                self._patches.set(builder, name, self._hooked(_through(builder, name), _count(kind)))
        self._patches.set(builder, "set_grid_dim", self._grid_dim(_through(builder, "set_grid_dim")))
        self._patches.set(builder, "set_grid_idx", self._grid_idx(_through(builder, "set_grid_idx")))
        ops = interpreter.ReduceScanOpInterface
        self._patches.set(ops, "apply", self._reduction(ops.apply))
        self._patches.set(interpreter, "GridExecutor", _executor(interpreter.GridExecutor))
        _active = self
        return self

    def __exit__(self, *exc) -> None:
        global _active
        _active = None
        self._patches.restore()

    # hooks -------------------------------------------------------------------------------------
    @staticmethod
    def _hooked(original, after):
        def hooked(*args, **kwargs):
            out = original(*args, **kwargs)
            launch = _current
            if launch is not None and launch.counting and launch.vec is not None:
                after(launch, args, out)
                recorder = _active
                recorder.ops += 1
                if recorder.max_ops is not None and recorder.ops > recorder.max_ops:
                    raise OverBudget(f"the recording ran more than {recorder.max_ops} interpreted operations")
            return out
        return hooked

    @staticmethod
    def _grid_dim(original):
        def set_grid_dim(nx, ny, nz):
            return original(*_current.grid) if _current is not None else original(nx, ny, nz)
        return set_grid_dim

    @staticmethod
    def _grid_idx(original):
        def set_grid_idx(x, y, z):
            if _current is None:
                return original(x, y, z)
            return original(*_current.coords(_current.start(x)))
        return set_grid_idx

    @staticmethod
    def _reduction(original):
        def apply(self, input):
            launch = _current
            if launch is None or not launch.counting or launch.vec is None:
                return original(self, input)
            values = input if isinstance(input, tuple) else (input,)
            launch.counting = False  # a generic reduction calls its combine function per element
            try:
                return original(self, input)
            finally:
                launch.counting = True
                launch.vec[_ALU] += sum(v.handle.data.size for v in values if hasattr(v, "handle"))
        return apply

    # launches ----------------------------------------------------------------------------------
    def begin(self, name: str, args, kwargs) -> _Launch:
        ordinal = self._ordinals.get(name, 0)
        self._ordinals[name] = ordinal + 1
        hint = next((h for h in (self.sample.hints if self.sample else ())
                     if h.get("name") == name and h.get("ordinal") == ordinal), None)
        return _Launch(name, ordinal, _storages((*args, *kwargs.values())), int(kwargs.get("num_warps") or 4),
                       self.sample, list(hint["heavy"]) if hint else [], int(hint["programs"]) if hint else 1)

    def finish(self, launch: _Launch) -> None:
        record = launch.record()
        if self.sample is None and record["extrapolation"] == "full":
            heavy = launch.heavy()
            if heavy:
                self._hints.append({"name": launch.name, "ordinal": launch.ordinal, "programs": record["programs"],
                                    "heavy": heavy})
        if len(self.records) < self.max_launches:
            self.records.append(record)
            return
        merged = self._merged.get(launch.name)  # past the cap: one summed record per kernel
        if merged is None:
            self._merged[launch.name] = merged = {**record, "count": 0, "dot_flops": {},
                                                  **{key: 0 for key in SUMMED}}
            self.records.append(merged)
        merged["count"] += 1
        for key in SUMMED:
            merged[key] += record[key]
        for key in ("max_program_bytes", "max_program_ops", "max_program_dot_flops"):
            merged[key] = max(merged[key], record[key])
        for p, v in record["dot_flops"].items():
            merged["dot_flops"][p] = merged["dot_flops"].get(p, 0.0) + v

    def hints(self) -> list[dict]:
        """Where small-size launches had unusually heavy programs, for ``Sampling(hints=...)``."""
        return list(self._hints)


@dataclass(frozen=True)
class Recording:
    records: list  # torch ops, then kernel launches: what the trusted side prices
    hints: list  # heavy programs seen (small-size recordings), for a later ``Sampling(hints=...)``


class OverBudget(Exception):
    """A recording ran past its operation budget (``KernelWork.max_ops``)."""


def record_call(fn, args, sample: Sampling | None = None, max_ops: int | None = None) -> Recording:
    """Run ``fn(*args)`` once with both recorders (no grad, unless ``fn`` enables it for a backward
    task's call): the one call the runner records. With
    ``sample`` (the full-size call) kernels run a sample of programs and heavy torch ops are elided,
    so outputs are meaningless; without, the call computes as usual. Past ``max_ops`` interpreted
    block operations it raises ``OverBudget``."""
    with torch.no_grad(), KernelWork(sample=sample, max_ops=max_ops) as launches, \
            AtenWork(elide=sample is not None) as ops:
        fn(*args)
    return Recording(ops.records + launches.records, launches.hints())


def _executor(base):
    """A GridExecutor that runs the planned programs of a recorded launch (all, or a sample)."""

    class RecordingExecutor(base):
        def __call__(self, *args, **kwargs):
            global _current
            recorder = _active
            if recorder is None or _current is not None:
                return super().__call__(*args, **kwargs)
            launch = recorder.begin(self.fn.__name__, args, kwargs)
            inner = self.grid
            self.grid = lambda call_args: (launch.plan(inner(call_args) if callable(inner) else inner),)
            _current = launch
            try:
                with _Pause():
                    result = super().__call__(*args, **kwargs)
            finally:
                _current = None
                self.grid = inner
            recorder.finish(launch)  # only a launch that returned is recorded
            return result

    return RecordingExecutor
