"""interpreter_compat: kernels written the way Triton libraries write them (multi-config autotune,
libdevice math, float arguments cast with ``.to``, dtypes handed to helpers, wrappers that read the
JITFunction) run under the interpreter and give torch's numbers; the gaps that stay are named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl
from compat_submissions import SUBMISSIONS, calls, load
from helpers import reply
from triton.runtime.interpreter import InterpretedFunction

from kernel_env.inside import interpreter_compat
from kernel_env.inside.launches import LaunchRecorder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.fixture(scope="module")
def modules(compat, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compat")
    return {name: load(name, source, str(folder)) for name, (source, _) in SUBMISSIONS.items()}


@pytest.fixture
def recorder(monkeypatch):
    """The harness's launch recorder on the interpreter's kernel class (put back afterwards)."""
    monkeypatch.setattr(InterpretedFunction, "run", InterpretedFunction.run)

    def watch(module):
        rec = LaunchRecorder(module.__file__, set())
        rec._wrap(InterpretedFunction)
        return rec
    return watch


# -- in-process: each submission's kernels give torch's numbers, one counted launch per call -----

@pytest.mark.parametrize("name", SUBMISSIONS)
def test_library_style_kernels_give_torchs_numbers(name, modules, recorder):
    fn_name, args, reference = calls()[name]
    launches = recorder(modules[name])
    torch.testing.assert_close(getattr(modules[name], fn_name)(*args), reference(), atol=1e-4, rtol=1e-4)
    assert launches.count == 1  # autotuned or wrapped: the harness still sees the one real launch


def test_autotune_runs_the_first_config_left_after_pruning(modules):
    kernel = modules["rms_norm"].rms_norm_kernel
    for cols, block in ((200, 256), (1000, 1024), (3000, 4096)):  # narrower blocks are pruned
        x, w = torch.randn(3, cols), torch.randn(cols)
        expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
        torch.testing.assert_close(modules["rms_norm"].rms_norm(x, w, 1e-6), expected, atol=1e-4, rtol=1e-4)
        assert kernel.best_config.kwargs == {"BLOCK": block}


HOOKS = '''
import triton
import triton.language as tl

calls = []


@triton.autotune(configs=[triton.Config({"BLOCK": 64}, pre_hook=lambda nargs: calls.append(nargs["n"])),
                          triton.Config({"BLOCK": 128}), triton.Config({"BLOCK": 256})],
                 key=["n"], reset_to_zero=["acc_ptr"], restore_value=["x_ptr"])
@triton.jit
def accumulate(x_ptr, acc_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.atomic_add(acc_ptr + offs, x, mask=mask)
    tl.store(x_ptr + offs, x + 1, mask=mask)
'''


def test_autotune_hooks_act_as_on_the_run_after_tuning(compat, tmp_path):
    """As on a GPU: the tuning call zeroes ``reset_to_zero`` (later calls do not), no benchmark run
    leaves a trace in ``restore_value`` tensors, and the config's pre_hook runs before each launch."""
    module = load("hooks", HOOKS, str(tmp_path))
    x, acc = torch.arange(100.0), torch.full((100,), 5.0)
    grid = lambda meta: (triton.cdiv(100, meta["BLOCK"]),)  # noqa: E731
    module.accumulate[grid](x, acc, 100)
    assert torch.equal(acc, torch.arange(100.0)) and torch.equal(x, torch.arange(100.0) + 1)
    module.accumulate[grid](x, acc, 100)
    assert torch.equal(acc, 2 * torch.arange(100.0) + 1) and module.calls == [100, 100]


# -- libdevice -----------------------------------------------------------------------------------

@triton.jit
def _libdevice_call(a_ptr, b_ptr, c_ptr, out_ptr, F: tl.constexpr, ARITY: tl.constexpr, N: tl.constexpr):
    offs = tl.arange(0, N)
    a = tl.load(a_ptr + offs)
    if ARITY == 1:
        r = F(a)
    elif ARITY == 2:
        r = F(a, tl.load(b_ptr + offs))
    else:
        r = F(a, tl.load(b_ptr + offs), tl.load(c_ptr + offs))
    tl.store(out_ptr + offs, r)


X = torch.linspace(-3, 3, 16)
POS = torch.linspace(0.05, 5, 16)
UNIT = torch.linspace(-0.95, 0.95, 16)
HALVES = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, 2.4, -2.6] * 2)
MATH = {  # name: (inputs, torch reference)
    "tanh": ((X,), torch.tanh), "rsqrt": ((POS,), torch.rsqrt), "erf": ((X,), torch.erf), "exp": ((X,), torch.exp),
    "log1p": ((POS,), torch.log1p), "pow": ((POS, X), torch.pow), "atan2": ((X, POS), torch.atan2),
    "erfinv": ((UNIT,), torch.erfinv), "lgamma": ((POS,), torch.lgamma), "asinh": ((X,), torch.asinh),
    "exp10": ((X,), lambda t: 10 ** t), "fast_dividef": ((X, POS), torch.div), "div_rn": ((X, POS), torch.div),
    "fma": ((X, POS, X), lambda a, b, c: a * b + c),
    "round": ((HALVES,), lambda t: torch.tensor([1.0, 2, 3, -1, -2, 0, 2, -3] * 2, dtype=t.dtype)),  # half away from 0
    "isnan": ((torch.tensor([float("nan"), 1.0] * 8),), lambda t: t.isnan().int()),
    "float2int_rz": ((X * 1.3,), lambda t: t.trunc().int()), "float2int_rd": ((X * 1.3,), lambda t: t.floor().int()),
}
FP32_ONLY = {"fast_dividef", "float2int_rz", "float2int_rd"}  # libdevice has no fp64 version


@pytest.mark.parametrize("name, dtype", [(name, dtype) for name in MATH for dtype in (torch.float32, torch.float64)
                                         if dtype == torch.float32 or name not in FP32_ONLY])
def test_libdevice_math_matches_torch(name, dtype, compat):
    from triton.language.extra import libdevice

    inputs, reference = MATH[name]
    inputs = [t.to(dtype) for t in inputs]
    expected = reference(*inputs)
    out = torch.empty(16, dtype=expected.dtype)
    padded = [*inputs, *inputs[:1] * (3 - len(inputs))]
    _libdevice_call[(1,)](*padded, out, getattr(libdevice, name), len(inputs), 16)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


UNMAPPED = {"clz", "popc", "byte_perm", "mulhi", "mul24", "brev", "sad", "ffs", "rcp64h", "hiloint2double",
            "double2loint", "double2hiint", "j0", "j1", "y0", "y1", "yn", "jn", "cyl_bessel_i0", "cyl_bessel_i1",
            "erfcx"}


def test_every_common_libdevice_function_has_a_numpy_implementation():
    from triton.language.extra.cuda import libdevice

    names = {name for name, fn in vars(libdevice).items() if tl.core.is_builtin(fn)}
    unmapped = {name for name in names if interpreter_compat._numpy_impl(name) is None}
    assert unmapped <= UNMAPPED and len(names - unmapped) > 170


def test_a_libdevice_function_without_numpy_counterpart_is_named(compat):
    from triton.language.extra import libdevice

    a = torch.arange(1, 17, dtype=torch.int32)
    with pytest.raises(Exception, match=r"libdevice\.clz .*no interpreter implementation") as info:
        _libdevice_call[(1,)](a, a, a, torch.empty_like(a), libdevice.clz, 1, 16)
    assert "The code may be fine on a GPU" in compat.explain(info.value)


def test_libdevice_types_are_the_gpus(compat):
    """Dispatch goes through the CUDA module's type table: fp16 has no ``tanh`` there, as on a GPU."""
    from triton.language.extra import libdevice

    x = torch.randn(16, dtype=torch.float16)
    with pytest.raises(Exception, match="float16"):
        _libdevice_call[(1,)](x, x, x, torch.empty_like(x), libdevice.tanh, 1, 16)


def test_libdevice_wrappers_stay_builtins_that_keep_a_semantic_they_are_given():
    """Interpreted code passes no ``_semantic`` (the interpreter's is used); the compiler passes its
    own to anything marked builtin, and must get it through."""
    @tl.core.builtin
    def probe(x, _semantic=None):
        return _semantic

    call = interpreter_compat._with_semantic(probe, "interpreter")
    assert tl.core.is_builtin(call) and call(1.0) == "interpreter" and call(1.0, _semantic="compiler") == "compiler"


# -- scalar and dtype arguments ------------------------------------------------------------------

@triton.jit
def _scaled(x_ptr, out_ptr, scale, ACC: tl.constexpr, N: tl.constexpr):
    tl.static_assert(scale.dtype == tl.float32)
    offs = tl.arange(0, N)
    tl.store(out_ptr + offs, _times(tl.load(x_ptr + offs), scale.to(ACC), ACC))


@triton.jit
def _times(x, s, dtype: tl.constexpr):
    return x.to(dtype.value) * s


def test_float_arguments_are_fp32_scalars_and_dtypes_reach_helpers(compat):
    x = torch.randn(16)
    out = torch.empty(16)
    _scaled[(1,)](x, out, 0.5, tl.float32, 16)
    torch.testing.assert_close(out, x * 0.5)


# -- what wrappers read ----------------------------------------------------------------------------

def test_wrappers_read_the_jitfunction_attributes(modules):
    module = modules["gelu"]
    entry, kernel = module.gelu_kernel, module.gelu_kernel.fn
    assert entry.__name__ == "gelu_kernel" and entry.constexpr_names == ["BLOCK"]
    assert entry.specialized == ["x_ptr", "out_ptr", "n"] and list(entry.signature.parameters) == kernel.arg_names
    assert len(entry.cache_key) == 64 and kernel.src.startswith("def gelu_kernel(")
    assert (kernel.__doc__, kernel.__module__, kernel.__qualname__) == ("Exact (erf) GELU.", "compat_gelu", "gelu_kernel")
    assert kernel.__globals__ is vars(module) and kernel.fn.__code__.co_filename == module.__file__
    with pytest.raises(AttributeError, match="no attribute 'device_caches_typo'"):
        kernel.device_caches_typo


# -- install() and explain() -----------------------------------------------------------------------

def test_install_does_nothing_without_the_interpreter(monkeypatch):
    changed = []
    monkeypatch.setattr(interpreter_compat, "_set", lambda *a: changed.append(a))
    monkeypatch.setattr(interpreter_compat, "_installed", False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    interpreter_compat.install()
    assert changed == [] and interpreter_compat.explain(RuntimeError("0 active drivers")) is None


def test_install_is_idempotent(compat, monkeypatch):
    changed = []
    monkeypatch.setattr(interpreter_compat, "_set", lambda *a: changed.append(a))
    compat.install()
    assert changed == []


def _raised(inner: Exception) -> Exception:
    """``inner`` as the interpreter re-raises it: InterpreterError(repr(inner)) from inner."""
    from triton.runtime.errors import InterpreterError

    try:
        try:
            raise inner
        except Exception as exc:
            raise InterpreterError(repr(exc)) from exc
    except InterpreterError as outer:
        return outer


@pytest.mark.parametrize("error, gap", [
    (RuntimeError("0 active drivers ([]). There should only be one."), "GPU driver"),
    (AssertionError("Torch not compiled with CUDA enabled"), "torch.cuda"),
    (AttributeError("'int' object has no attribute 'value'"), "`.value`"),
    (NotImplementedError("inline_asm not supported in interpreter mode"), "does not implement"),
    (AttributeError("'function' object has no attribute 'fn'"), "not a JITFunction"),
])
def test_gaps_that_stay_are_named(error, gap, compat):
    for exc in (error, _raised(error)):
        text = compat.explain(exc)
        assert gap in text and text.endswith("The code may be fine on a GPU.")


def test_other_errors_get_no_explanation(compat):
    assert compat.explain(ValueError("bad block size")) is None
    assert compat.explain(_raised(AttributeError("'float' object has no attribute 'to'"))) is None  # hook is in


@pytest.mark.parametrize("hook, failing, needle", [
    (None, {"rms_norm", "gelu", "softplus", "layer_norm", "sum_dim1"}, None),
    ("autotune", {"rms_norm", "softplus", "sum_dim1"}, "0 active drivers"),
    ("libdevice", {"rms_norm", "gelu", "softplus"}, None),
    ("scalar arguments", {"rms_norm", "softplus", "layer_norm"}, "'float' object has no attribute 'to'"),
    ("dtype.value", {"layer_norm"}, "'dtype' object has no attribute 'value'"),
    ("JITFunction attributes", {"gelu"}, "'InterpretedFunction' object has no attribute 'constexprs'"),
], ids=["bare interpreter", "autotune", "libdevice", "scalar arguments", "dtype.value", "JITFunction attributes"])
def test_without_a_hook_its_submissions_fail_with_the_gap_named(hook, failing, needle):
    """In a fresh interpreter process: the bare one fails on every submission; with one hook left out
    (as on a Triton that lacks it) exactly its submissions fail, and explain() names the gap."""
    out = subprocess.run([sys.executable, str(HERE / "compat_submissions.py"), *([hook] if hook else [])],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    outcome = json.loads(out.stdout.splitlines()[-1])
    assert {name for name, failed in outcome.items() if failed} == failing, outcome
    for name in failing:
        error, explanation = outcome[name]
        assert needle is None or needle in error, error
        assert (explanation is None) == (hook is None), (error, explanation)  # the bare run has no install()


# -- end to end: the real evaluator on bundled tasks -----------------------------------------------

@pytest.fixture(scope="module")
def verdicts(evaluator, bundled):
    results = evaluator.map([(bundled[task], reply(code)) for code, task in SUBMISSIONS.values()])
    return dict(zip(SUBMISSIONS, results))


@pytest.mark.parametrize("name", SUBMISSIONS)
def test_library_style_submission_is_correct_and_clean(name, verdicts):
    r = verdicts[name]
    assert r.correct and r.clean and r.error is None, (r.error, r.hacks, r.findings)


@triton.jit
def _to_bf16(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask), mask=mask)  # the store casts to bf16
    tl.store(out_ptr + n + offs, tl.load(x_ptr + offs, mask=mask).to(tl.bfloat16), mask=mask)


def test_float32_to_bfloat16_rounds_to_nearest_even_as_a_gpu_does(compat):
    x = torch.randn(256, generator=torch.Generator().manual_seed(0))
    out = torch.empty(512, dtype=torch.bfloat16)
    _to_bf16[(1,)](x, out, 256, BLOCK=256)
    want = x.to(torch.bfloat16)  # torch rounds to nearest even, as CUDA does
    assert torch.equal(out[:256], want) and torch.equal(out[256:], want)
    assert not torch.equal(want, (x.view(torch.int32) & ~0xFFFF).view(torch.float32).to(torch.bfloat16))  # not truncation
