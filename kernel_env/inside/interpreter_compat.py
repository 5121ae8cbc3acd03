"""Run library-style Triton kernels under Triton's interpreter (``TRITON_INTERPRET=1``).

Kernels written for GPUs the way Liger-Kernel or FlagGems write them are correct code, yet the
interpreter fails on them with messages that do not say why. :func:`install` closes these gaps, only
when the interpreter is on (the worker calls it before any candidate is imported):

- ``@triton.autotune`` with several configs benchmarks them through the GPU driver ("0 active
  drivers"). Here the *first* config left after ``prune_configs_by`` runs, since timing configs
  under the interpreter says nothing about the GPU. Nothing is benchmarked, so the kernel runs once;
  ``reset_to_zero``, ``restore_value`` and the hooks act as they do on the real run after tuning,
  and that run still goes through the kernel's ``run``, where the launch recorder counts it.
- ``libdevice`` math (``triton.language.extra.libdevice`` stubs return None, the CUDA module needs
  the compiler) is dispatched by the CUDA module's own type tables, so argument and result types are
  the GPU's, and computed with numpy.
- A float kernel argument is a Python float, so ``eps.to(tl.float32)`` fails: it becomes an fp32
  scalar, as the compiler passes it.
- The compiler hands a ``tl.dtype`` to helpers wrapped in ``tl.constexpr``, so ``dtype.value``
  works there; here ``tl.dtype`` gets that ``value`` too.
- ``@triton.jit`` returns an ``InterpretedFunction`` without ``src``, ``cache_key``, ``params``,
  ``constexprs``, ``signature``...: they are read from a ``JITFunction`` built for the same function.
- float32 to bfloat16 conversions truncate; a GPU rounds to nearest even, and so does this layer.
- Triton 3.6 turns a scalar into a loop bound with ``int(array)``, which NumPy 2.4 refuses for a
  one-element array, so every ``for k in range(0, K, BLOCK)`` fails there; 3.9 squeezes it first,
  and so does this layer on every version.

The hooks are Triton internals (checked on 3.6 and 3.9); one this Triton lacks leaves its gap open.
For the gaps that stay, :func:`explain` names the gap and says the code may be fine on a GPU.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import re
import statistics

import numpy as np
import triton
import triton.language as tl

_installed = False
_missing: set[str] = set()  # hooks this Triton lacks: their gaps stay open


def _set(owner, name: str, value) -> None:
    """Every change to Triton goes through here (tests undo them)."""
    setattr(owner, name, value)


def install() -> None:
    """Close the interpreter's gaps (once; nothing happens when the interpreter is off)."""
    global _installed
    if _installed or not triton.knobs.runtime.interpret:
        return
    _installed = True
    for name, hook in _HOOKS.items():
        try:  # each hook looks up every internal it needs before it changes anything
            hook()
        except (ImportError, AttributeError, OSError, TypeError):  # another Triton: this gap stays
            _missing.add(name)


# -- autotune ------------------------------------------------------------------------------------

_order = itertools.count()


def _bench_in_order(self, kernel_call, quantiles=None, **_):
    """Stands in for the autotuner's benchmark: runs nothing, and each config "takes" longer than
    the one before, so the first one wins."""
    ms = float(next(_order))
    return [ms] * len(quantiles) if quantiles else ms


def _autotune() -> None:
    from triton.runtime.autotuner import Autotuner

    _set(Autotuner, "do_bench", _bench_in_order)


# -- libdevice -----------------------------------------------------------------------------------

_SQRT2 = math.sqrt(2.0)


def _elementwise(fn, error=math.nan):
    """A scalar function of the math module, applied to each element (``error`` where it raises)."""
    def safe(x):
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return error
    return np.vectorize(safe, otypes=[np.float64])


def _probit(p: float) -> float:
    if 0.0 < p < 1.0:
        return statistics.NormalDist().inv_cdf(p)
    return {0.0: -math.inf, 1.0: math.inf}.get(p, math.nan)


def _round_half_away(x):
    whole = np.trunc(x)
    return whole + np.where(np.abs(x - whole) >= 0.5, np.sign(x), 0).astype(whole.dtype)


def _norm(*xs):
    return np.sqrt(sum(x.astype(np.float64) ** 2 for x in xs))


_erf = _elementwise(math.erf)
_erfc = _elementwise(math.erfc)
_exponent = np.vectorize(lambda x: math.frexp(x)[1] - 1, otypes=[np.int64])

#: libdevice functions numpy does not have under the same name (the rest are looked up in numpy).
_SPECIAL = {
    "rsqrt": lambda x: 1 / np.sqrt(x), "rcp": np.reciprocal, "sub": np.subtract, "mul": np.multiply,
    "div": np.divide, "pow": np.power, "exp10": lambda x: np.power(10, x), "saturatef": lambda x: np.clip(x, 0, 1),
    "fma": lambda x, y, z: x.astype(np.float64) * y + z, "fdim": lambda x, y: np.maximum(x - y, 0),
    "sinpi": lambda x: np.sin(np.pi * x), "cospi": lambda x: np.cos(np.pi * x), "rcbrt": lambda x: 1 / np.cbrt(x),
    "rhypot": lambda x, y: 1 / np.hypot(x, y), "norm3d": _norm, "norm4d": _norm,
    "rnorm3d": lambda *xs: 1 / _norm(*xs), "rnorm4d": lambda *xs: 1 / _norm(*xs),
    "round": _round_half_away, "llround": _round_half_away, "llrint": np.rint, "nearbyint": np.rint,
    "finitef": np.isfinite, "isfinited": np.isfinite, "scalbn": np.ldexp, "ilogb": _exponent, "logb": _exponent,
    "remainder": np.vectorize(math.remainder, otypes=[np.float64]),
    "erf": _erf, "erfc": _erfc, "normcdf": lambda x: 0.5 * _erfc(-x.astype(np.float64) / _SQRT2),
    "erfinv": _elementwise(lambda y: _probit((y + 1) / 2) / _SQRT2),
    "erfcinv": _elementwise(lambda y: -_probit(y / 2) / _SQRT2), "normcdfinv": _elementwise(_probit),
    "lgamma": _elementwise(math.lgamma, math.inf), "tgamma": _elementwise(math.gamma),
    "hadd": lambda x, y: (x.astype(np.int64) + y) >> 1, "rhadd": lambda x, y: (x.astype(np.int64) + y + 1) >> 1,
}
_ROUNDING = {"rn": np.rint, "rz": np.trunc, "rd": np.floor, "ru": np.ceil}
_BITS = {"float": np.float32, "int": np.int32, "uint": np.uint32, "double": np.float64, "longlong": np.int64}


def _numpy_impl(name: str):
    """A numpy implementation of libdevice function ``name``, or None. Results are cast to the
    GPU's result type afterwards; directed rounding (``_rz``...) is kept only where it changes an
    integer result, arithmetic rounds to nearest (at most one ulp off)."""
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name.startswith("fast_"):  # fast_expf -> exp, fast_dividef -> divide
        return _numpy_impl(name[len("fast_"):].removesuffix("f"))
    base, _, mode = name.rpartition("_")
    if mode in _ROUNDING:
        if "2" not in base:  # add_rn, sqrt_rz, fma_rd...
            return _numpy_impl(base)
        source, target = base.split("2")  # conversions: float2int_rz, int2float_rn...
        to_integer = source in ("float", "double") and target not in ("float", "double")
        return _ROUNDING[mode] if to_integer else np.asarray
    if "_as_" in name:  # bit casts: float_as_int...
        bits = _BITS.get(name.partition("_as_")[2])
        return bits and (lambda x: x.view(bits))
    for candidate in (name, "arc" + name[1:]):  # tanh, log1p, isnan...; atan2 -> arctan2
        ufunc = getattr(np, candidate, None)
        if isinstance(ufunc, np.ufunc):
            return ufunc
    return None


def _with_semantic(fn, semantic):
    """A CUDA libdevice builtin made callable from interpreted code: the interpreter passes no
    ``_semantic`` to modules it does not patch, so the interpreter's is used then. It stays marked as
    a builtin (what ``cache_key`` looks for), and the compiler, which passes its own, is served as before."""
    @functools.wraps(fn)
    def call(*args, _semantic=None, **kwargs):
        return fn(*args, **kwargs, _semantic=_semantic or semantic)
    return call


def _without_cuda(stub):
    """A stub with no CUDA counterpart fails as the GPU compiler would, instead of returning None."""
    @functools.wraps(stub)
    def call(*args, **kwargs):
        raise AttributeError(f"triton.language.extra.cuda.libdevice has no {stub.__name__}")
    return call


def _libdevice() -> None:
    from triton.language.extra import libdevice as stubs
    from triton.language.extra.cuda import libdevice as cuda
    from triton.runtime import interpreter

    semantic, handle, np_dtype = interpreter.interpreter_semantic, interpreter.TensorHandle, interpreter._get_np_dtype
    builtins = {name: fn for name, fn in vars(cuda).items() if tl.core.is_builtin(fn)}
    by_symbol = {}  # "__nv_tanhf" -> ("tanh", its numpy implementation or None)
    for name, fn in builtins.items():
        symbols = re.findall(r'"(__nv_\w+)"', inspect.getsource(fn))
        by_symbol.update(dict.fromkeys(symbols, (name, _numpy_impl(name))))

    def create_extern_elementwise(self, lib_name, lib_path, symbol, args, ret_type, is_pure):
        name, impl = by_symbol.get(symbol, (symbol, None))
        if impl is None:
            raise NotImplementedError(f"libdevice.{name} ({symbol}) has no interpreter implementation")
        ret = ret_type.scalar
        with np.errstate(all="ignore"):
            data = np.asarray(impl(*(a.data for a in args)))
        return handle(data.astype(np_dtype(ret)), ret)

    _set(interpreter.InterpreterBuilder, "create_extern_elementwise", create_extern_elementwise)
    for name, fn in builtins.items():
        _set(cuda, name, _with_semantic(fn, semantic))
    for name, stub in list(vars(stubs).items()):
        if inspect.isfunction(stub) and stub.__module__ == stubs.__name__:
            _set(stubs, name, getattr(cuda, name) if name in builtins else _without_cuda(stub))


# -- scalar arguments, dtypes as constexprs ------------------------------------------------------

def _scalars() -> None:
    from triton.runtime import interpreter

    convert = interpreter._implicit_cvt

    def implicit_cvt(arg):
        if isinstance(arg, float):  # the compiler passes float arguments as fp32 scalars
            return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
        return convert(arg)

    _set(interpreter, "_implicit_cvt", implicit_cvt)


def _dtype_value() -> None:
    if not hasattr(tl.core.dtype, "value"):
        _set(tl.core.dtype, "value", property(lambda self: self))


# -- what library wrappers read on a @triton.jit function --------------------------------------

#: JITFunction attributes an InterpretedFunction lacks; ``__doc__`` and ``__module__`` are set on
#: each kernel instead (the class has its own).
_JIT_ATTRIBUTES = frozenset({
    "src", "raw_src", "cache_key", "params", "signature", "constexprs", "do_not_specialize",
    "do_not_specialize_on_alignment", "starting_line_number", "def_file_line_number", "file_name", "module",
    "version", "debug", "noinline", "launch_metadata", "repr", "parse", "get_capture_scope", "__globals__",
    "__qualname__",
})


def _jit_attributes() -> None:
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    init = InterpretedFunction.__init__

    def __init__(self, fn, **kwargs):
        init(self, fn, **kwargs)
        self.__doc__, self.__module__ = fn.__doc__, fn.__module__

    def __getattr__(self, name):
        if name not in _JIT_ATTRIBUTES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        described = self.__dict__.get("_described")
        if described is None:  # built on first use: it reads the source, as JITFunction does
            described = self.__dict__["_described"] = JITFunction(self.fn, **self.kwargs)
        return getattr(described, name)

    _set(InterpretedFunction, "__init__", __init__)
    _set(InterpretedFunction, "__getattr__", __getattr__)


def _loop_bounds() -> None:
    from triton.runtime import interpreter

    patch_tensor = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))  # undone with the rest

    _set(interpreter, "_patch_lang_tensor", patched)


def _bf16_rounding() -> None:
    """A GPU rounds float32 to bfloat16 to nearest even (``.to(tl.bfloat16)``, a bf16 store); the
    interpreter truncates, which doubles a bf16 kernel's error. torch rounds as the GPU does."""
    import torch
    from triton.runtime.interpreter import InterpreterBuilder, TensorHandle

    cast = InterpreterBuilder.cast_impl

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            rounded = torch.from_numpy(np.ascontiguousarray(src.data, dtype=np.float32)).to(torch.bfloat16)
            return TensorHandle(rounded.view(torch.int16).numpy().view(np.uint16), dst_type.scalar)
        return cast(self, src, dst_type)

    _set(InterpreterBuilder, "cast_impl", cast_impl)


_HOOKS = {"autotune": _autotune, "libdevice": _libdevice, "scalar arguments": _scalars,
          "dtype.value": _dtype_value, "JITFunction attributes": _jit_attributes, "loop bounds": _loop_bounds,
          "bf16 rounding": _bf16_rounding}


# -- the gaps that stay --------------------------------------------------------------------------

#: (hook whose absence makes the error mean this gap, or None for always; pattern of the error; the gap)
_GAPS = (
    (None, r"0 active drivers", "it needs Triton's GPU driver (autotuning benchmarks, triton.testing, device "
                                "properties or compiled-kernel handles), which the interpreter does not have"),
    (None, r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|No CUDA GPUs are available",
     "the interpreter runs on the CPU, where torch.cuda has no device"),
    (None, r"has no interpreter implementation", "this libdevice function has no numpy counterpart here"),
    (None, r"not supported in interpreter mode", "Triton's interpreter does not implement this operation"),
    (None, r"'(int|float|bool|str|NoneType|dtype)' object has no attribute 'value'",
     "under the interpreter tl.constexpr arguments are plain Python values, so `.value` is missing "
     "(use the argument itself)"),
    (None, r"'function' object has no attribute 'fn'",
     "under the interpreter @triton.jit returns an InterpretedFunction, not a JITFunction, so code that "
     "follows `.fn` until it finds a JITFunction runs past it"),
    ("libdevice", r"'NoneType'", "libdevice functions are empty stubs under this Triton's interpreter"),
    ("libdevice", r"Did you forget to add @triton.jit", "tl.extra.cuda.libdevice functions need the compiler "
                                                        "under this Triton's interpreter"),
    ("scalar arguments", r"'float' object has no attribute",
     "float kernel arguments are plain Python floats under this Triton's interpreter"),
    ("JITFunction attributes", r"'InterpretedFunction' object has no attribute",
     "@triton.jit returns an InterpretedFunction without JITFunction's attributes"),
)


def explain(exc: BaseException) -> str | None:
    """A sentence for an error that comes from a known interpreter gap, else None (always None when
    :func:`install` did not run, e.g. on a GPU)."""
    if not _installed:
        return None
    seen = set()
    while exc is not None and id(exc) not in seen:  # the interpreter re-raises with the cause chained
        seen.add(id(exc))
        text = f"{type(exc).__name__}: {exc}"
        for hook, pattern, gap in _GAPS:
            if re.search(pattern, text) and (hook is None or hook in _missing):
                return f"Triton interpreter gap: {gap}. The code may be fine on a GPU."
        exc = exc.__cause__ or exc.__context__
    return None
