"""KernelBench submissions written the way Triton library authors write kernels (Liger-Kernel and
FlagGems style): correct GPU code that the bare interpreter cannot run. Each is a whole module, so the
same code is evaluated end to end and imported in-process (:func:`calls` says how to call each host
function and what torch computes instead).

Run as a script it imports each one under the bare interpreter, or with every hook of
``interpreter_compat`` but one, and prints as JSON the error each raises.
"""

from __future__ import annotations

#: autotune over 3 configs with a key, pruned by ``early_config_prune``, heuristics below it,
#: ``rsqrt`` imported from libdevice as Liger does, and ``eps.to(tl.float32)`` on a float argument.
RMS_NORM = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl

try:
    from triton.language.extra.libdevice import rsqrt
except ModuleNotFoundError:
    from triton.language.extra.cuda.libdevice import rsqrt


def _wide_enough(configs, named_args, **kwargs):
    """One block per row: drop the configs whose block is narrower than the row."""
    return [c for c in configs if c.kwargs["BLOCK"] >= named_args["n_cols"]]


@triton.autotune(
    configs=[triton.Config({"BLOCK": 256}, num_warps=2), triton.Config({"BLOCK": 1024}, num_warps=4),
             triton.Config({"BLOCK": 4096}, num_warps=8)],
    key=["n_cols"],
    prune_configs_by={"early_config_prune": _wide_enough},
)
@triton.heuristics({"EVEN": lambda args: args["n_cols"] == args["BLOCK"]})
@triton.jit
def rms_norm_kernel(y_ptr, x_ptr, w_ptr, row_stride, n_cols, eps, BLOCK: tl.constexpr, EVEN: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    if EVEN:
        x = tl.load(x_ptr + row * row_stride + cols).to(tl.float32)
    else:
        x = tl.load(x_ptr + row * row_stride + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = rsqrt(tl.sum(x * x, axis=0) / n_cols + eps.to(tl.float32))
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    tl.store(y_ptr + row * row_stride + cols, x * rstd * w, mask=mask)


def rms_norm(x, weight, eps):
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    y = torch.empty_like(x2)
    rms_norm_kernel[(x2.shape[0],)](y, x2, weight, x2.stride(0), x2.shape[1], eps)
    return y.view_as(x)


class ModelNew(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(hidden_size))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
'''

#: ``libdevice.erf`` through ``triton.language.extra``, launched through a FlagGems-style entry
#: point that reads what ``@triton.jit`` returned.
GELU = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl
from triton.language.extra import libdevice


class LibEntry(triton.KernelInterface):
    """A library's entry point: it checks each launch against the kernel's own description."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.fn.__name__
        self.arg_names = fn.arg_names
        self.constexpr_names = [fn.arg_names[i] for i in fn.constexprs]
        self.specialized = [p.name for p in fn.params if not p.is_constexpr]
        self.cache_key = fn.cache_key
        self.signature = fn.signature
        assert fn.src.startswith("def " + self.__name__), fn.src

    def run(self, *args, **kwargs):
        missing = [name for name in self.constexpr_names if name not in kwargs]
        if missing:
            raise TypeError(f"{self.__name__}: pass {missing} by keyword")
        return self.fn.run(*args, **kwargs)


def libentry():
    return LibEntry


@libentry()
@triton.jit
def gelu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """Exact (erf) GELU."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(out_ptr + offs, 0.5 * x * (1.0 + libdevice.erf(x * 0.7071067811865476)), mask=mask)


def gelu(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    gelu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out


class ModelNew(nn.Module):
    def forward(self, x):
        return gelu(x)
'''

#: The older ``tl.extra.cuda.libdevice`` path (log1p, exp, isnan), float ``beta``/``threshold``
#: arguments cast with ``.to``, and heuristics on top of a 3-config autotune.
SOFTPLUS = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.heuristics({"WIDE": lambda args: args["n"] >= 4096})
@triton.autotune(configs=[triton.Config({"BLOCK": b}, num_warps=w) for b, w in ((1024, 4), (2048, 8), (512, 2))],
                 key=["n"])
@triton.jit
def softplus_kernel(x_ptr, out_ptr, n, beta, threshold, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    b = beta.to(tl.float32)
    bx = x * b
    soft = tl.extra.cuda.libdevice.log1p(tl.extra.cuda.libdevice.exp(bx)) / b
    y = tl.where(bx > threshold.to(tl.float32), x, soft)
    y = tl.where(tl.extra.cuda.libdevice.isnan(x), x, y)
    tl.store(out_ptr + offs, y, mask=mask)


def softplus(x, beta=1.0, threshold=20.0):
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    softplus_kernel[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](x, out, n, beta, threshold)
    return out


class ModelNew(nn.Module):
    def forward(self, x):
        return softplus(x)
'''

#: A ``tl.dtype`` constexpr (``ACC``) and ``y_ptr.dtype.element_ty`` handed to nested jit helpers,
#: one of which unwraps it with ``.value`` as compiled code may; ``eps.to`` on a float argument.
LAYER_NORM = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _load_row(ptr, offs, mask, dtype: tl.constexpr):
    return tl.load(ptr + offs, mask=mask, other=0.0).to(dtype.value)


@triton.jit
def _store_row(ptr, offs, value, mask, dtype):
    tl.store(ptr + offs, value.to(dtype), mask=mask)


@triton.jit
def layer_norm_kernel(y_ptr, x_ptr, w_ptr, b_ptr, n_cols, eps, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = _load_row(x_ptr + row * n_cols, cols, mask, ACC)
    mean = tl.sum(x, axis=0) / n_cols
    d = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / n_cols + eps.to(ACC))
    w = _load_row(w_ptr, cols, mask, ACC)
    b = _load_row(b_ptr, cols, mask, x.dtype)
    _store_row(y_ptr + row * n_cols, cols, d * rstd * w + b, mask, y_ptr.dtype.element_ty)


def layer_norm(x, weight, bias, eps):
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    y = torch.empty_like(x2)
    layer_norm_kernel[(x2.shape[0],)](y, x2, weight, bias, x2.shape[1], eps, ACC=tl.float32,
                                      BLOCK=triton.next_power_of_2(x2.shape[1]))
    return y.view_as(x)


class ModelNew(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.5)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.5)

    def forward(self, x):
        return layer_norm(x, self.norm.weight, self.norm.bias, self.norm.eps)
'''

#: Split reduction with ``tl.atomic_add`` autotuned over 3 configs with ``reset_to_zero``, as
#: libraries write it so that benchmarking the configs does not add up their results.
SUM_DIM1 = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.autotune(configs=[triton.Config({"SPLIT": s, "BLOCK_N": 64}) for s in (16, 32, 8)], key=["R", "N"],
                 reset_to_zero=["out_ptr"])
@triton.jit
def sum_dim1_kernel(x_ptr, out_ptr, R, N, SPLIT: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    chunk = tl.program_id(1)
    cols = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = chunk * SPLIT + tl.arange(0, SPLIT)
    mask = (rows[:, None] < R) & (cols[None, :] < N)
    x = tl.load(x_ptr + b * R * N + rows[:, None] * N + cols[None, :], mask=mask, other=0.0)
    tl.atomic_add(out_ptr + b * N + cols, tl.sum(x, axis=0), mask=cols < N)


def sum_dim1(x):
    x = x.contiguous()
    batch, r, n = x.shape
    out = torch.zeros(batch, 1, n, dtype=x.dtype)
    grid = lambda meta: (batch, triton.cdiv(r, meta["SPLIT"]), triton.cdiv(n, meta["BLOCK_N"]))
    sum_dim1_kernel[grid](x, out, r, n)
    return out


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        assert dim == 1

    def forward(self, x):
        return sum_dim1(x)
'''

#: name -> (submission, the bundled task it answers)
SUBMISSIONS = {
    "rms_norm": (RMS_NORM, "L1/23_RMSNorm"),
    "gelu": (GELU, "L1/10_GELU"),
    "softplus": (SOFTPLUS, "L1/12_Softplus"),
    "layer_norm": (LAYER_NORM, "L1/22_LayerNorm"),
    "sum_dim1": (SUM_DIM1, "L1/25_Sum_reduction"),
}


def calls():
    """name -> (host function, its inputs, what torch computes) for an in-process check."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 200, generator=g) * 3
    w, b = torch.randn(200, generator=g), torch.randn(200, generator=g)
    cube = torch.randn(2, 40, 72, generator=g)
    return {
        "rms_norm": ("rms_norm", (x, w, 1e-6), lambda: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w),
        "gelu": ("gelu", (x,), lambda: F.gelu(x)),
        "softplus": ("softplus", (x * 10,), lambda: F.softplus(x * 10)),
        "layer_norm": ("layer_norm", (x, w, b, 1e-5), lambda: F.layer_norm(x, (200,), w, b, 1e-5)),
        "sum_dim1": ("sum_dim1", (cube,), lambda: cube.sum(1, keepdim=True)),
    }


def load(name: str, source: str, folder: str):
    """Import a submission from a real file (Triton reads kernels' source from it)."""
    import importlib.util
    import os

    path = os.path.join(folder, f"compat_{name}.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(f"compat_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_all(folder: str, explain=None) -> dict:
    """name -> None when the host function gives torch's numbers, else [the error's root cause,
    ``explain(error)``]."""
    import torch

    outcome = {}
    for name, (fn_name, args, reference) in calls().items():
        try:
            got = getattr(load(name, SUBMISSIONS[name][0], folder), fn_name)(*args)
            torch.testing.assert_close(got, reference(), atol=1e-4, rtol=1e-4)
            outcome[name] = None
        except Exception as exc:  # noqa: BLE001 - the message is the result
            root = exc
            while root.__cause__ is not None:  # the interpreter re-raises errors wrapped, once per call level
                root = root.__cause__
            outcome[name] = [f"{type(root).__name__}: {root}", explain(exc) if explain else None]
    return outcome


if __name__ == "__main__":
    # python compat_submissions.py [HOOK]: the submissions under the bare interpreter, or with every
    # hook of interpreter_compat but HOOK (reported missing, as on a Triton that lacks it)
    import json
    import os
    import sys
    import tempfile

    os.environ["TRITON_INTERPRET"] = "1"
    explain = None
    if len(sys.argv) > 1:
        from kernel_env.inside import interpreter_compat

        del interpreter_compat._HOOKS[sys.argv[1]]
        interpreter_compat.install()
        interpreter_compat._missing.add(sys.argv[1])
        explain = interpreter_compat.explain
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run_all(tmp, explain)))
