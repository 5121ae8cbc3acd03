"""Compile the submission's own kernels for a GPU target, on a machine that may have no GPU.

Why: under ``TRITON_INTERPRET=1`` a ``@triton.jit`` body is plain Python, so ``torch.relu(x)``, a
host helper or ``math.sqrt`` on a tensor all run; Triton's compiler refuses them. Compiling each
launched kernel for sm_90a (ttir, ttgir, llir, ptx, then a cubin from the ptxas bundled with the
wheel) needs neither a GPU nor a driver, and tells the trusted side whether the kernel would build on
the GPU, with its shared memory, registers and spills.

How: :meth:`GpuCompiler.observe` sits in the harness's launch wrapper and derives, from one real
launch, the signature Triton itself would compile (its own binder and specialisation rules: pointer
dtypes, ``i32``/``i64``, ints equal to 1 as constexpr, 16-divisibility). :meth:`GpuCompiler.compile_all`
runs later, outside every timed interval: the code generator walks the kernel's AST, and a call it
would make into host Python (where Triton would run candidate code at compile time) is refused.

The interpreter leaves Triton unfit to compile (3.6 and 3.9 alike): ``@triton.jit`` made
``InterpretedFunction`` objects (the kernel, its helpers, and Triton's own ``tl.sigmoid``, ``tl.sum``,
...), ``ConstexprFunction`` answers raw values while the interpret knob is set, and each device
function call under the interpreter patches ``triton.language`` and never undoes it. So every compile
runs inside :class:`_CompileScope`: the interpret knob off, ``triton.language`` as it was when this
module was imported (so import it before any kernel runs), each ``InterpretedFunction`` swapped for a
``JITFunction`` twin of the same Python function, the wrappers the harness's interpreter_compat puts
around libdevice peeled off, and all of it put back afterwards.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import types
from time import perf_counter  # bound before the candidate can replace time.perf_counter
from typing import Self

import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, CompilationError, code_generator, make_backend
from triton.compiler import compile as triton_compile  # bound before the candidate can replace it
from triton.runtime import autotuner, jit
from triton.runtime.jit import ConstexprFunction, JITFunction

try:
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:  # pragma: no cover - a Triton without the interpreter
    InterpretedFunction = None

#: The default target: an H100-class GPU (sm_90a), 32 threads a warp.
H100 = GPUTarget("cuda", 90, 32)
_TRITON_DIR = os.path.dirname(os.path.abspath(triton.__file__)) + os.sep
_HARNESS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MISSING = object()
_MAX_ERROR = 2000  # characters of a compile error that travel back
_TWINS: dict = {}  # InterpretedFunction -> its JITFunction twin; built once, inherited by forks


def warm_up() -> None:
    """Pay in the warm worker, before it forks, what each evaluation's first compile would pay:
    Triton's version hash (it reads all of libtriton, about 0.4 s) and the twins of triton.language."""
    try:
        from triton.runtime.cache import triton_key
    except ImportError:  # pragma: no cover - another Triton: the first compile pays for it
        pass
    else:
        triton_key()
    with _CompileScope():
        pass


# -- triton.language as imported --------------------------------------------------------------

def _language_owners() -> list:
    """The namespaces the interpreter patches: triton.language's modules and the classes in them."""
    owners = {}
    for name, module in list(sys.modules.items()):
        if type(module) is types.ModuleType and (name == "triton.language" or name.startswith("triton.language.")):
            owners[id(module)] = module
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__.startswith("triton.language"):
                    owners[id(value)] = value
    return list(owners.values())


def _from_interpreter(value) -> bool:
    code = getattr(value, "__code__", None)
    return code is not None and code.co_filename.endswith(os.path.join("runtime", "interpreter.py"))


#: Captured at import, before any kernel runs: ``_patch_lang`` replaces builtins such as
#: ``tl.core.program_id`` with interpreter lambdas and, for device-function calls, never puts them back.
_PRISTINE = {id(owner): (owner, dict(vars(owner))) for owner in _language_owners()}
_PATCHED_AT_IMPORT = sorted(name for _, saved in _PRISTINE.values()
                            for name, value in saved.items() if _from_interpreter(value))
_SKIPPED = ("__annotations__", "__dict__", "__weakref__")  # Python's own bookkeeping, never patched


def _twin_of(value):
    """The compilable form of ``value``: a JITFunction for an InterpretedFunction or for the
    ``tensor.sum``-style member wrapper around one; the Triton function itself for a wrapper the
    harness's interpreter_compat put around it (``libdevice``); ``value`` itself otherwise. Exact
    type tests, so no candidate object is asked anything (``isinstance`` reads ``__class__``)."""
    while type(value) is types.FunctionType and value.__code__.co_filename.startswith(_HARNESS_DIR) \
            and hasattr(value, "__wrapped__"):
        value = value.__wrapped__
    if type(value) is types.FunctionType and value.__qualname__ == "_tensor_member_fn.<locals>.wrapper" \
            and "fn" in value.__code__.co_freevars:
        inner = value.__closure__[value.__code__.co_freevars.index("fn")].cell_contents
        if type(inner) is InterpretedFunction:
            value = inner
    if InterpretedFunction is None or type(value) is not InterpretedFunction:
        return value
    twin = _TWINS.get(value)
    if twin is None:
        try:
            twin = _TWINS[value] = JITFunction(value.fn, **value.kwargs)
        except Exception:  # noqa: BLE001 - no source to read: Triton refuses it if the kernel uses it
            return value
    return twin


# -- the compile scope ------------------------------------------------------------------------

class _CompileScope:
    """Everything a compile changes in the process, undone on exit (see the module docstring)."""

    def __init__(self):
        self.sources: dict[str, JITFunction] = {}  # jit source -> function, to place compile errors
        self._undo: list[tuple[object, str | None, object]] = []
        self._covered: set[int] = set()  # ids of the functions and globals dicts already covered

    def twin(self, value):
        """:func:`_twin_of`, with the twin's globals covered too (its callees become twins)."""
        twin = _twin_of(value)
        if type(twin) is JITFunction:
            self.cover(twin)
        return twin

    def cover(self, fn: JITFunction) -> None:
        """Show twins in ``fn``'s globals and closure while the scope lasts."""
        if id(fn) in self._covered:
            return
        self._covered.add(id(fn))
        self.sources.setdefault(fn.src, fn)
        scope = fn.fn.__globals__
        if id(scope) not in self._covered:
            self._covered.add(id(scope))
            for name, value in list(scope.items()):
                self._set(scope, name, self.twin(value))
        for cell in fn.fn.__closure__ or ():
            try:
                self._set(cell, None, self.twin(cell.cell_contents))
            except ValueError:  # an empty cell
                pass

    def _set(self, owner, name: str | None, value) -> None:
        """``owner`` is a dict (globals), a class or a closure cell (``name`` None)."""
        current = _get(owner, name)
        if current is not value:
            self._undo.append((owner, name, current))
            _put(owner, name, value)

    def __enter__(self) -> Self:
        self._knobs = [knobs.runtime.scope(), knobs.compilation.scope(), knobs.nvidia.scope()]
        for scope in self._knobs:
            scope.__enter__()
        try:
            self._enter()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _enter(self) -> None:
        knobs.runtime.interpret = False
        knobs.compilation.allow_non_constexpr_globals = False  # an env var the candidate could set
        knobs.compilation.front_end_debugging = False
        knobs.nvidia.dump_ptxas_log = True  # registers and spills, see _ptxas_usage
        for owner in _language_owners():
            current = dict(vars(owner))
            wanted = _PRISTINE.get(id(owner), (owner, current))[1]  # one imported later was never patched
            namespace = owner
            if type(owner) is types.ModuleType:
                namespace = vars(owner)
                self._covered.add(id(namespace))  # its twins are set here, from the pristine values
            for name in (set(current) | set(wanted)) - set(_SKIPPED):
                self._set(namespace, name, _twin_of(wanted.get(name, _MISSING)))
        if hasattr(code_generator.CodeGenerator, "call_Function"):  # else Triton's own checks only
            self._set(code_generator.CodeGenerator, "call_Function", _guarded(self))

    def __exit__(self, *exc) -> None:
        while self._undo:
            owner, name, value = self._undo.pop()
            _put(owner, name, value)
        for scope in reversed(self._knobs):
            scope.__exit__(None, None, None)


def _get(owner, name):
    if name is None:
        return owner.cell_contents
    return (owner if type(owner) is dict else vars(owner)).get(name, _MISSING)


def _put(owner, name, value) -> None:
    if name is None:
        owner.cell_contents = value
    elif type(owner) is dict and value is _MISSING:
        owner.pop(name, None)
    elif type(owner) is dict:
        owner[name] = value
    elif value is _MISSING:
        delattr(owner, name)
    else:
        setattr(owner, name, value)


def _guarded(scope: _CompileScope):
    """``CodeGenerator.call_Function`` that compiles interpreted callees and refuses host calls."""
    original = code_generator.CodeGenerator.call_Function

    def call_Function(generator, node, fn, args, kws):
        fn = scope.twin(fn)
        reason = _host_call(fn)
        if reason:
            raise CompilationError(generator.jit_fn.src, node, reason)
        return original(generator, node, fn, args, kws)

    return call_Function


#: Classes a kernel may call (``int(x)``, ``float(...)``): Python's own value types.
_BUILTIN_TYPES = (str, bytes, int, float, bool, complex, tuple, list, dict, range, slice, type(None))


def _in_triton(code) -> bool:
    return os.path.abspath(code.co_filename).startswith(_TRITON_DIR)


def _host_call(fn) -> str | None:
    """Why the code generator must not call ``fn``, or None when it is Triton's own or a harmless
    builtin (``len``, ``min``, ``math.log2`` on a constant). Python code counts as Triton's by the
    file it lives in, which a candidate does not change by setting ``__module__`` or
    ``__triton_builtin__``; a ``@triton.constexpr_function`` of the submission is host Python too."""
    target = getattr(fn, "__func__", fn)  # bound methods, BoundJITMethod, BoundConstexprFunction
    if isinstance(target, JITFunction):
        return None
    if isinstance(target, ConstexprFunction):
        target = target.fn
    if isinstance(target, type):
        if target in _BUILTIN_TYPES or getattr(target, "__triton_aggregate__", False) or (
                issubclass(target, tuple) and hasattr(target, "_fields")):  # namedtuples, as Triton allows
            return None
        codes = [getattr(getattr(target, m, None), "__code__", None) for m in ("__init__", "__new__")]
        if target.__module__.startswith("triton.") and all(c is None or _in_triton(c) for c in codes):
            return None
        return _refusal(fn, "a Python class")
    code = getattr(target, "__code__", None)
    if code is None and not isinstance(target, types.BuiltinFunctionType):
        code = getattr(type(target).__call__, "__code__", None)  # a callable object
    if code is not None:
        return None if _in_triton(code) else _refusal(fn, "a Python function, not @triton.jit")
    owner = getattr(target, "__self__", None)  # a C function: len and math.sqrt name their module
    if (type(owner) is types.ModuleType and owner.__name__ in ("builtins", "math")) or type(owner) in _BUILTIN_TYPES:
        return None
    return _refusal(fn, "a host function")


def _refusal(fn, what: str) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    label = f"{module}.{name}" if module and module not in ("builtins", "kernel_candidate") else name
    return (f"{label} is {what}: a @triton.jit function can call only Triton functions and other "
            f"@triton.jit functions; the GPU compiler would run it as host Python at compile time, "
            f"never on the device")


# -- one launch's signature ---------------------------------------------------------------------

class _Binder:
    """Binds one kernel's launch arguments as ``JITFunction.run`` does. Triton's generated binder and
    its specialisation (3.6 to 3.9) give the cheap per-launch key Triton itself caches compiles by,
    and ``_pack_args`` the signature, once per new key; :func:`_bind_fallback` re-states the rules
    where those internals are missing."""

    def __init__(self, twin: JITFunction, backend):
        self.twin, self.backend = twin, backend
        make = getattr(jit, "create_function_from_signature", None)
        self.native = make(twin.signature, twin.params, backend) if make and hasattr(twin, "_pack_args") else None

    def __call__(self, args: tuple, kwargs: dict):
        """(launch key, a function giving (signature, constexprs, attrs, options))."""
        kwargs = {**kwargs, "debug": kwargs.get("debug", self.twin.debug) or knobs.runtime.debug}
        if self.native is None:
            bound = _bind_fallback(self.twin, self.backend, args, kwargs)
            return repr(bound), lambda: bound
        params, specialization, options = self.native(*args, **kwargs)

        def pack():
            packed, signature, constexprs, attrs = self.twin._pack_args(self.backend, kwargs, params, specialization,
                                                                        options)
            return signature, constexprs, attrs, packed

        return (str(specialization), str(options)), pack


def _bind_fallback(twin: JITFunction, backend, args: tuple, kwargs: dict):
    """Triton's rules re-stated for flat, unannotated arguments: ints equal to 1 become constexprs,
    ints and pointers divisible by 16 get the divisibility hint, floats and bools are not specialised."""
    names = [p.name for p in twin.params]
    bound = twin.signature.bind(*args, **{k: v for k, v in kwargs.items() if k in names})
    bound.apply_defaults()
    options = backend.parse_options({k: v for k, v in kwargs.items() if k not in names})
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(twin.params):
        value = bound.arguments[param.name]
        kind, hint = ("constexpr", None) if param.is_constexpr else _specialize(value, param)
        signature[param.name] = kind
        if kind == "constexpr":
            constexprs[(i,)] = value
        elif hint is not None:
            attrs[(i,)] = backend.parse_attr(hint)
    return signature, constexprs, attrs, options


def _specialize(value, param) -> tuple[str, str | None]:
    """(type, hint) for one argument, as ``native_specialize_impl`` answers them."""
    specialize, align = not param.do_not_specialize, not param.do_not_specialize_on_alignment
    if value is None:
        return "constexpr", None
    if isinstance(value, bool):
        return "u1", None
    if isinstance(value, int):
        if value == 1 and specialize:
            return "constexpr", None
        kind = "i32" if -2**31 <= value < 2**31 else "u64" if 2**63 <= value < 2**64 else "i64"
        return kind, ("D" if align and value % 16 == 0 else "") if specialize else None
    if isinstance(value, float):
        return "fp32", None
    if hasattr(value, "data_ptr") and hasattr(value, "dtype"):
        kind = "*" + _TYPE_NAMES[str(value.dtype).split(".")[-1]]
        return kind, ("D" if align and value.data_ptr() % 16 == 0 else "") if specialize else None
    raise TypeError(f"cannot specialise an argument of type {type(value).__name__} without Triton's binder")


#: torch dtype name -> Triton type string (what ``native_specialize_impl`` answers).
_TYPE_NAMES = {
    "float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64", "int8": "i8", "int16": "i16",
    "int32": "i32", "int64": "i64", "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "bool": "u1", "float8_e4m3fn": "fp8e4nv", "float8_e5m2": "fp8e5", "float8_e4m3fnuz": "fp8e4b8",
    "float8_e5m2fnuz": "fp8e5b16",
}


# -- the compiler ---------------------------------------------------------------------------------

class _Launch:
    """What one distinct (kernel, signature) needs for its compile; no tensors are kept."""

    def __init__(self, kernel, bound=None, error: str | None = None):
        self.kernel, self.error = kernel, error
        self.signature, self.constexprs, self.attrs, self.options = bound or ({}, {}, {}, None)

    def key(self, twin: JITFunction, scope: _CompileScope) -> str:
        """Source (with every jit function it reaches and the constexpr globals) + signature +
        options: the same text in another process gives the same key. Computed inside the scope,
        where helpers are twins; Triton raises here for a host function the kernel references."""
        twins = {k: scope.twin(v) for k, v in self.constexprs.items()}
        constexprs = {k: t.cache_key if type(t) is JITFunction else t for k, t in sorted(twins.items())}
        text = repr((twin.cache_key, sorted(self.signature.items()), constexprs,
                     sorted(self.attrs.items()), sorted(vars(self.options).items())))
        return hashlib.sha256(text.encode()).hexdigest()


class GpuCompiler:
    """Records the first launch of each distinct (kernel, signature), compiles them later.

    ``known`` holds keys the trusted side already has records for: those are not compiled again and
    their keys land in ``reused`` instead. At most ``limit`` launches are recorded (a compile takes
    0.05 to 0.5 s, and a submission could launch a new signature every call); ``dropped`` counts the rest.
    """

    def __init__(self, target: GPUTarget = H100, known=(), limit: int = 16):
        if _PATCHED_AT_IMPORT:
            raise RuntimeError("kernel_env.inside.gpu_compile was imported after a kernel ran under the "
                               f"interpreter (triton.language already patched: {_PATCHED_AT_IMPORT[:3]})")
        self.target = target
        self.backend = make_backend(target)
        self.known = set(known)
        self.reused: list[str] = []
        self.limit, self.dropped = limit, 0
        self._seen: set[tuple] = set()
        self._binders: dict[int, tuple] = {}  # id(kernel) -> (kernel, its _Binder)
        self._pending: list[_Launch] = []
        self._bench_code = getattr(getattr(autotuner.Autotuner, "_bench", None), "__code__", None)

    def observe(self, kernel, args: tuple, kwargs: dict) -> None:
        """Called by the launch wrapper with ``run``'s arguments (``grid`` and ``warmup`` are
        dropped); never raises and keeps no tensors. Launches an autotuner makes while it benchmarks
        configs are skipped: the chosen config's launch follows and is recorded."""
        kwargs = {k: v for k, v in kwargs.items() if k not in ("grid", "warmup")}
        try:
            if id(kernel) not in self._binders:  # by id: a JITFunction hashes by its cache_key
                self._binders[id(kernel)] = (kernel, _Binder(_twin_of(kernel), self.backend))
            key, pack = self._binders[id(kernel)][1](tuple(args), kwargs)
            seen = (id(kernel), key)
            if seen in self._seen or self._benchmarking():
                return
            launch = _Launch(kernel, pack())
        except Exception as exc:  # noqa: BLE001 - the GPU launch would raise here too
            seen = (id(kernel), type(exc).__name__, str(exc))
            if seen in self._seen:
                return
            launch = _Launch(kernel, error=_plain_error(exc))
        self._seen.add(seen)
        if len(self._seen) > self.limit:
            self.dropped += 1
            return
        self._pending.append(launch)

    def _benchmarking(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None and self._bench_code is not None:
            if frame.f_code is self._bench_code:
                return True
            frame = frame.f_back
        return False

    def compile_all(self) -> list[dict]:
        """Compile each launch recorded since the last call whose key is not known; one plain dict
        per launch (see :func:`_record`). Candidate code may have left the compiler broken: the
        caller treats the records as evidence, never as proof."""
        pending, self._pending = self._pending, []
        records = []
        with _CompileScope() as scope:
            for launch in pending:
                name = _name(launch.kernel)
                if launch.error is not None:
                    records.append(_record(name, None, ok=False, error=launch.error))
                    continue
                twin = _twin_of(launch.kernel)
                try:
                    scope.cover(twin)
                    key = launch.key(twin, scope)
                except Exception as exc:  # noqa: BLE001 - Triton refuses what the kernel references
                    records.append(_record(name, None, ok=False, error=_compile_error(exc, scope, twin)))
                    continue
                if key in self.known:
                    self.reused.append(key)
                    continue
                self.known.add(key)
                records.append(self._compile(scope, twin, launch, key))
        return records

    def _compile(self, scope: _CompileScope, twin: JITFunction, launch: _Launch, key: str) -> dict:
        name, options = _name(launch.kernel), launch.options
        start, log = perf_counter(), io.StringIO()
        try:
            constexprs = {k: scope.twin(v) for k, v in launch.constexprs.items()}
            source = ASTSource(twin, launch.signature, constexprs, launch.attrs)
            with contextlib.redirect_stdout(log):  # ptxas's log, and the PTX Triton prints when ptxas fails
                compiled = triton_compile(source, target=self.target, options=vars(options))
        except Exception as exc:  # noqa: BLE001 - a compile error is the result
            return _record(name, key, ok=False, error=_compile_error(exc, scope, twin), num_warps=options.num_warps,
                           num_stages=options.num_stages, seconds=perf_counter() - start)
        meta = compiled.metadata
        registers, spills = _ptxas_usage(log.getvalue()) or _cubin_usage(compiled.asm.get("cubin"))
        error = _shared_memory_error(meta.shared, self.target)
        return _record(name, key, ok=error is None, error=error, num_warps=meta.num_warps,
                       num_stages=meta.num_stages, shared_bytes=meta.shared, registers=registers,
                       spills=spills, seconds=perf_counter() - start)


def _name(kernel) -> str:
    return getattr(getattr(kernel, "fn", None), "__name__", None) or type(kernel).__name__


def _record(kernel: str, key: str | None, *, ok: bool, error: str | None = None, num_warps=None,
            num_stages=None, shared_bytes=None, registers=None, spills=None, seconds=0.0) -> dict:
    """One compile's result as plain JSON: ``key`` is None when Triton refused the kernel before
    a key existed; ``registers``/``spills`` (bytes of spill stores) are None when no tool told."""
    return {"kernel": kernel, "key": key, "ok": ok, "error": error, "num_warps": num_warps,
            "num_stages": num_stages, "shared_bytes": shared_bytes, "registers": registers,
            "spills": spills, "seconds": round(seconds, 4)}


# -- resources --------------------------------------------------------------------------------------

#: Shared memory one block may use, by compute capability: without a driver to ask, the published
#: per-block opt-in limits (A100 163 KiB; H100/B200 227 KiB; consumer parts 99 KiB).
_MAX_SHARED = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448, 100: 232448, 103: 232448,
               120: 101376}


def _shared_memory_error(shared: int, target: GPUTarget) -> str | None:
    """What loading the kernel on the GPU would raise (Triton's OutOfResources) for too much shared memory."""
    limit = _MAX_SHARED.get(target.arch)
    if limit is None or shared <= limit:
        return None
    return (f"OutOfResources: out of resource: shared memory, Required: {shared}, Hardware limit: {limit}. "
            "Reducing block sizes or `num_stages` may help.")


_PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores")
_CUOBJDUMP_USAGE = re.compile(r"REG:(\d+)\s+STACK:(\d+)")


def _ptxas_usage(log: str) -> tuple[int, int] | None:
    """(registers, spill-store bytes) from the ``ptxas -v`` log of Triton's own ptxas run, which
    ``knobs.nvidia.dump_ptxas_log`` prints. None when ptxas did not run (Triton's cache had the cubin)."""
    registers, spills = _PTXAS_REGISTERS.search(log), _PTXAS_SPILLS.search(log)
    return (int(registers.group(1)), int(spills.group(1))) if registers and spills else None


def _cubin_usage(cubin: bytes | None) -> tuple[int | None, int | None]:
    """(registers, spills) from the cubin by the cuobjdump bundled with Triton: without a driver
    there is no ``n_regs`` to ask for. cuobjdump gives the stack frame, not spill stores, so spills
    are 0 for an empty frame and unknown (None) otherwise; None, None without a cuobjdump."""
    if not cubin:
        return None, None
    try:
        tool = knobs.nvidia.cuobjdump.path
    except Exception:  # noqa: BLE001 - no bundled tool and none on PATH
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        try:
            out = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return None, None
    match = _CUOBJDUMP_USAGE.search(out)
    if not match:
        return None, None
    return int(match.group(1)), 0 if match.group(2) == "0" else None


# -- errors -----------------------------------------------------------------------------------------

_UNSUPPORTED = "Unsupported function referenced: "


def _compile_error(exc: BaseException, scope: _CompileScope, twin: JITFunction) -> str:
    """The compiler's own message, pointed at the candidate's file: ``file:line: message``, the
    line and a caret, then the calls that led there. Triton refuses a host function such as
    ``torch.relu`` while hashing the kernel, with no line; the line is found here."""
    chain, cause = [], exc
    while cause is not None:
        if isinstance(cause, CompilationError):
            chain.append(cause)
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    if chain:
        inner = chain[-1]
        reason = inner.error_message or _plain_error(inner.__cause__ or inner)
        lines = [_located(scope.sources.get(inner.src), inner.src, inner.node, reason)]
        lines += ["  called from " + _located(scope.sources.get(e.src), e.src, e.node) for e in reversed(chain[:-1])]
        return _trim("\n".join(lines))
    message = str(exc)
    if isinstance(exc, RuntimeError) and message.startswith(_UNSUPPORTED):
        found = _find_reference(twin, message[len(_UNSUPPORTED):], set())
        if found:
            fn, node = found
            reason = (f"{ast.unparse(node)} is host Python, not a Triton function: a @triton.jit function "
                      f"can call only Triton functions and other @triton.jit functions ({message})")
            return _trim(_located(fn, fn.src, node, reason))
    return _plain_error(exc)


_PRINTABLE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType)


def _find_reference(fn: JITFunction, text: str, seen: set):
    """(function, node) of the name in ``fn``, or in a jit function it calls, that resolves to a
    function printed as ``text``. Names resolve through modules only: no candidate object is asked.
    ``seen`` holds ids: a JITFunction hashes by its ``cache_key``, which is what failed."""
    seen.add(id(fn))
    scope = fn.get_capture_scope()
    for node in ast.walk(fn.parse()):
        value = _resolve(node, scope)
        if type(value) in _PRINTABLE and str(value) == text:
            return fn, node
        if type(value) is JITFunction and id(value) not in seen:
            found = _find_reference(value, text, seen)
            if found:
                return found
    return None


def _resolve(node, scope: dict):
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        base = _resolve(node.value, scope)
        if type(base) is types.ModuleType:
            return vars(base).get(node.attr)
    return None


def _located(fn: JITFunction | None, src: str | None, node, reason: str | None = None) -> str:
    """``file:line: reason``, then the source line and a caret under the column."""
    lineno = getattr(node, "lineno", None)
    if src is None or lineno is None:
        return reason or "<source unavailable>"
    where = f"{os.path.basename(fn.fn.__code__.co_filename)}:{_def_line(fn) + lineno - 1}" if fn else f"line {lineno}"
    lines = src.split("\n")
    text = lines[lineno - 1] if lineno <= len(lines) else ""
    indent = len(text) - len(text.lstrip())
    head = f"{where}: {reason}" if reason else where
    return f"{head}\n    {text.strip()}\n    {' ' * max(node.col_offset - indent, 0)}^"


def _def_line(fn: JITFunction) -> int:
    """The file line of ``def``, where ``src`` starts, after the decorators (3.6 has no
    ``def_file_line_number``)."""
    offset = next((i for i, line in enumerate(fn.raw_src) if line.lstrip().startswith("def ")), 0)
    return fn.starting_line_number + offset


def _plain_error(exc: BaseException) -> str:
    return _trim(f"{type(exc).__name__}: {exc}")


def _trim(text: str) -> str:
    """At most ``_MAX_ERROR`` characters, without the repro command (temp paths) ptxas errors carry."""
    text = "\n".join(line for line in text.strip().splitlines() if not line.startswith("Repro command:"))
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 4] + " ..."
