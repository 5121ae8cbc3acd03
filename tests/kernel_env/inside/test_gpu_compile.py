"""gpu_compile: own kernels, launched as the harness launches them (under the interpreter when there
is no GPU), compile for sm_90a on the CPU with sane metadata; kernels that do host work inside a
@triton.jit body are refused with a compiler-style message naming their line, and none of that host
code runs while compiling."""

import importlib.util
from pathlib import Path

import gpu_compile_kernels as kernels
import pytest
import torch
import triton
import triton.language as tl
from triton import knobs
from triton.compiler import code_generator
from triton.runtime.jit import JITFunction

from kernel_env.inside import gpu_compile, interpreter_compat
from kernel_env.inside.gpu_compile import GpuCompiler

DEVICE = "cpu" if knobs.runtime.interpret else "cuda"
SOURCE = Path(kernels.__file__).read_text().splitlines()
pytestmark = [
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                       reason="kernels launch under the interpreter or on a GPU"),
    pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset"),  # Triton 3.9 on its own default
]


def line_of(marker: str) -> int:
    """The fixture file's line that carries ``# line: marker``."""
    return next(i for i, text in enumerate(SOURCE, 1) if text.endswith(f"# line: {marker}"))


@pytest.fixture
def compiler(monkeypatch, tmp_path):
    """A GpuCompiler fed by a launch wrapper like the harness's: own kernels only, every launch."""
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))  # a fresh cache: real compiles
    compiler = GpuCompiler()
    classes = [JITFunction]
    if gpu_compile.InterpretedFunction is not None:
        classes.append(gpu_compile.InterpretedFunction)
    for cls in classes:
        original = cls.run

        def run(kernel, *args, _original=original, **kwargs):
            if kernel.fn.__code__.co_filename == kernels.__file__ and not kwargs.get("warmup"):
                compiler.observe(kernel, args, kwargs)
            return _original(kernel, *args, **kwargs)

        monkeypatch.setattr(cls, "run", run)
    kernels.HOST_CALLS.clear()
    return compiler


def vectors(n=1000):
    x, y = torch.randn(n, device=DEVICE), torch.randn(n, device=DEVICE)
    return x, y, torch.empty_like(x)


def only(records: list[dict]) -> dict:
    assert len(records) == 1, records
    return records[0]


def assert_refused(record: dict, marker: str, *words: str):
    assert record["ok"] is False and record["registers"] is None, record
    error = record["error"]
    assert error.startswith(f"gpu_compile_kernels.py:{line_of(marker)}: "), error
    assert SOURCE[line_of(marker) - 1].strip() in error and "^" in error
    for word in words:
        assert word in error


# -- honest kernels --------------------------------------------------------------------------------

def test_an_elementwise_kernel_compiles_with_its_launch_options(compiler):
    x, y, out = vectors()
    kernels.add_kernel[(triton.cdiv(1000, 256),)](x, y, out, 1000, BLOCK=256, num_warps=2)
    assert torch.allclose(out, torch.sigmoid(x) + 2 * y, atol=1e-6)  # it ran, helpers and tl.sigmoid too
    record = only(compiler.compile_all())
    assert record["ok"] and record["error"] is None, record
    assert record["kernel"] == "add_kernel" and len(record["key"]) == 64
    assert (record["num_warps"], record["num_stages"]) == (2, 3)
    assert record["shared_bytes"] == 0 and 0 < record["registers"] <= 255 and record["spills"] == 0
    assert record["seconds"] > 0


def test_a_tiled_dot_matmul_uses_shared_memory(compiler):
    m = n = k = 64
    a, b = torch.randn(m, k, device=DEVICE), torch.randn(k, n, device=DEVICE)
    c = torch.empty(m, n, device=DEVICE)
    kernels.matmul_kernel[(m // 32, n // 32)](a, b, c, m, n, k, *a.stride(), *b.stride(), *c.stride(),
                                              BLOCK_M=32, BLOCK_N=32, BLOCK_K=32, num_warps=4, num_stages=2)
    assert torch.allclose(c, a @ b, atol=1e-3 if DEVICE == "cpu" else 5e-2)  # tf32 on a GPU
    record = only(compiler.compile_all())
    assert record["ok"], record
    assert (record["num_warps"], record["num_stages"]) == (4, 2)
    assert record["shared_bytes"] > 0 and record["registers"] > 0 and record["spills"] == 0


def test_compiling_leaves_the_interpreter_as_it_was(compiler):
    """The scope (also entered by warm_up) puts back triton.language, the knobs and the code generator."""
    interpret, call_function, sigmoid = knobs.runtime.interpret, code_generator.CodeGenerator.call_Function, tl.sigmoid
    x, y, out = vectors()
    kernels.add_kernel[(4,)](x, y, out, 1000, BLOCK=256)
    assert only(compiler.compile_all())["ok"]
    gpu_compile.warm_up()
    assert knobs.runtime.interpret == interpret and tl.sigmoid is sigmoid
    assert gpu_compile._PATCHED_AT_IMPORT == []  # it was imported before any kernel ran
    assert code_generator.CodeGenerator.call_Function is call_function
    kernels.add_kernel[(4,)](x, y, out, 1000, BLOCK=256)
    assert torch.allclose(out, torch.sigmoid(x) + 2 * y, atol=1e-6)


LIBDEVICE_KERNEL = """
import triton
import triton.language as tl
from triton.language.extra import libdevice
from triton.language.extra.libdevice import tanh


@triton.jit
def gelu_tanh(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n)
    inner = 0.7978845608 * (x + 0.044715 * libdevice.pow(x, 3.0))
    tl.store(out_ptr + offs, 0.5 * x * (1 + tanh(inner)), mask=offs < n)
"""


@pytest.mark.skipif(DEVICE == "cuda", reason="interpreter_compat acts under the interpreter only")
def test_interpreter_compat_wrappers_do_not_reach_the_compile(compiler, monkeypatch, tmp_path):
    """The worker installs interpreter_compat (libdevice made runnable by interpreter wrappers) before
    the harness, and so gpu_compile, is imported, and the candidate after both: the compile sees
    Triton's own libdevice, in triton.language and in the candidate's globals alike."""
    pristine = {key: (owner, dict(saved)) for key, (owner, saved) in gpu_compile._PRISTINE.items()}

    def change(owner, name, value):  # what importing gpu_compile after install() would have captured
        monkeypatch.setattr(owner, name, value, raising=False)
        if id(owner) in pristine:
            pristine[id(owner)][1][name] = value

    monkeypatch.setattr(interpreter_compat, "_set", change)
    monkeypatch.setattr(interpreter_compat, "_installed", False)
    monkeypatch.setattr(interpreter_compat, "_missing", set())
    interpreter_compat.install()
    monkeypatch.setattr(gpu_compile, "_PRISTINE", pristine)
    module = load_source("gpu_compile_libdevice", LIBDEVICE_KERNEL, tmp_path)
    x, _, out = vectors()
    module.gelu_tanh[(4,)](x, out, 1000, BLOCK=256)
    assert torch.allclose(out, torch.nn.functional.gelu(x, approximate="tanh"), atol=1e-5)
    compiler.observe(module.gelu_tanh, (x, out, 1000), {"BLOCK": 256})
    record = only(compiler.compile_all())
    assert record["ok"] and record["registers"] > 0, record


def load_source(name: str, source: str, folder: Path):
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- host work inside a kernel ---------------------------------------------------------------------

def test_a_torch_call_in_the_body_is_refused_at_its_line(compiler):
    x, _, out = vectors()
    compiler.observe(kernels.relu_in_torch, (x, out, 1000), {"BLOCK": 256})
    record = only(compiler.compile_all())
    assert record["key"] is None  # Triton refuses it while hashing the kernel
    assert_refused(record, "torch.relu", "torch.relu is host Python", "Unsupported function referenced")


def test_a_python_helper_is_refused_and_never_called(compiler):
    x, _, out = vectors()
    compiler.observe(kernels.helper_in_python, (x, out, 1000), {"BLOCK": 256})
    if DEVICE == "cpu":  # the interpreter runs it, host call and all
        kernels.helper_in_python[(4,)](x, out, 1000, BLOCK=256)
        assert kernels.HOST_CALLS
        kernels.HOST_CALLS.clear()
    assert_refused(only(compiler.compile_all()), "host_helper", "host_helper is host Python")
    assert kernels.HOST_CALLS == []


def test_a_helper_that_claims_to_be_a_triton_builtin_is_refused_and_never_called(compiler):
    """Triton's own checks trust ``__triton_builtin__`` and would call it while compiling."""
    x, _, out = vectors()
    compiler.observe(kernels.fake_builtin, (x, out, 1000), {"BLOCK": 256})
    assert_refused(only(compiler.compile_all()), "pretends_builtin", "is a Python function, not @triton.jit")
    assert kernels.HOST_CALLS == []


def test_a_python_function_passed_as_a_constexpr_is_refused_a_jit_one_compiles(compiler):
    x, _, out = vectors()
    kernels.apply_act[(4,)](x, out, 1000, ACT=kernels._twice, BLOCK=256)
    compiler.observe(kernels.apply_act, (x, out, 1000), {"ACT": kernels.host_helper, "BLOCK": 256})
    jit_act, host_act = compiler.compile_all()
    assert jit_act["ok"], jit_act
    assert_refused(host_act, "ACT", "host_helper is a Python function, not @triton.jit")
    assert kernels.HOST_CALLS == []


def test_math_on_a_tensor_fails_as_the_compiler_says(compiler):
    x, _, out = vectors()
    compiler.observe(kernels.sqrt_in_math, (x.abs(), out, 1000), {"BLOCK": 256})
    assert_refused(only(compiler.compile_all()), "math.sqrt", "must be real number")


def test_printing_host_values_fails_as_the_compiler_says(compiler):
    """``print`` is device_print in a kernel: it takes tensors and a string prefix, not shapes."""
    x, _, out = vectors()
    compiler.observe(kernels.print_shape, (x, out, 1000), {"BLOCK": 256})
    assert_refused(only(compiler.compile_all()), "print", "is not string")


def test_an_unknown_launch_option_fails_as_the_launch_would(compiler):
    x, y, out = vectors()
    compiler.observe(kernels.add_kernel, (x, y, out, 1000), {"BLOCK": 256, "num_wraps": 4})
    record = only(compiler.compile_all())
    assert not record["ok"] and record["key"] is None
    assert "num_wraps" in record["error"] and "unrecognised" in record["error"]


# -- wrappers and signatures -----------------------------------------------------------------------

def test_an_autotuned_kernel_is_compiled_for_the_chosen_config_only(compiler):
    x, _, out = vectors(300)
    kernels.tuned_kernel[lambda meta: (triton.cdiv(300, meta["BLOCK"]),)](x, out, 300)
    assert torch.allclose(out, 2 * x)
    assert kernels.tuned_kernel.best_config.kwargs == {"BLOCK": 128}
    record = only(compiler.compile_all())
    assert record["ok"] and record["kernel"] == "tuned_kernel" and record["num_warps"] == 2, record


def test_a_heuristics_kernel_is_compiled_with_the_values_it_chose(compiler):
    x, _, out = vectors(100)
    kernels.heuristic_kernel[(1,)](x, out, 100)
    assert torch.allclose(out, x + x.sum(), atol=1e-5)
    record = only(compiler.compile_all())
    assert record["ok"] and record["kernel"] == "heuristic_kernel", record
    bigger = GpuCompiler()
    bigger.observe(kernels.heuristic_kernel.fn, (x, out, 100), {"BLOCK": 256})
    assert only(bigger.compile_all())["key"] != record["key"]  # BLOCK=128 was compiled, not 256


def test_scalar_and_constexpr_arguments_make_distinct_signatures(compiler):
    x, y, out = vectors(1024)
    launches = [(1000, 256), (1024, 256), (1, 256), (1000, 512), (1000, 256)]  # the last one repeats
    for n, block in launches:
        kernels.add_kernel[(1,)](x, y, out, n, BLOCK=block)
    records = compiler.compile_all()
    assert len(records) == 4 and len({r["key"] for r in records}) == 4 and all(r["ok"] for r in records)
    bind = gpu_compile._Binder(gpu_compile._twin_of(kernels.add_kernel), compiler.backend)
    signatures = [bind((x, y, out, n), {"BLOCK": 256})[1]()[:3] for n in (1000, 1024, 1)]
    assert [s["n"] for s, _, _ in signatures] == ["i32", "i32", "constexpr"]  # 1 is specialised away
    (_, _, odd), (_, _, even), (_, ones, _) = signatures
    assert odd[(3,)] == [] and even[(3,)] == [["tt.divisibility", 16]] and ones[(3,)] == 1
    assert even[(0,)] == [["tt.divisibility", 16]] and signatures[0][0]["x_ptr"] == "*fp32"


def test_the_fallback_binder_agrees_with_tritons(compiler):
    x, y, out = vectors()
    x16 = x.to(torch.float16)
    twin = gpu_compile._twin_of(kernels.add_kernel)
    bind = gpu_compile._Binder(twin, compiler.backend)
    assert bind.native is not None  # Triton's own, on 3.6 and 3.9
    for args in [(x16, y, out, 1000), (x, y, out, 1024), (x, y[1:], out, 1)]:
        ours = gpu_compile._bind_fallback(twin, compiler.backend, args, {"BLOCK": 128, "num_warps": 2, "debug": False})
        theirs = bind(args, {"BLOCK": 128, "num_warps": 2})[1]()
        assert ours[:2] == theirs[:2] and ours[3] == theirs[3]
        assert {k: v for k, v in ours[2].items() if v} == {k: v for k, v in theirs[2].items() if v}


def test_known_keys_are_not_compiled_again(compiler):
    x, y, out = vectors()
    kernels.add_kernel[(4,)](x, y, out, 1000, BLOCK=256)
    key = only(compiler.compile_all())["key"]
    again = GpuCompiler(known=[key])
    again.observe(kernels.add_kernel, (x, y, out, 1000), {"BLOCK": 256})
    assert again.compile_all() == [] and again.reused == [key]


def test_launches_beyond_the_limit_are_counted_not_compiled():
    x, y, out = vectors()
    capped = GpuCompiler(limit=2)
    for block in (64, 128, 256, 512):
        capped.observe(kernels.add_kernel, (x, y, out, 1000), {"BLOCK": block})
    capped.observe(kernels.add_kernel, (x, y, out, 1000), {"BLOCK": 512})  # seen: not counted again
    assert len(capped._pending) == 2 and capped.dropped == 2


def test_shared_memory_beyond_the_gpu_fails_as_loading_it_would():
    assert gpu_compile._shared_memory_error(232448, gpu_compile.H100) is None
    assert "Required: 232449, Hardware limit: 232448" in gpu_compile._shared_memory_error(232449, gpu_compile.H100)


def test_registers_come_from_the_cubin_when_tritons_cache_skips_ptxas(compiler):
    log = ("ptxas info    : Function properties for k\n    512 bytes stack frame, 1052 bytes spill stores, "
           "796 bytes spill loads\nptxas info    : Used 128 registers, used 1 barriers\n")
    assert gpu_compile._ptxas_usage(log) == (128, 1052) and gpu_compile._ptxas_usage("") is None
    x, y, out = vectors()
    first, again = compiler, GpuCompiler()  # the same TRITON_CACHE_DIR: the second finds the cubin there
    for each in (first, again):
        each.observe(kernels.add_kernel, (x, y, out, 1000), {"BLOCK": 256})
    compiled, cached = only(first.compile_all()), only(again.compile_all())
    assert cached["ok"] and cached["registers"] == compiled["registers"] and cached["spills"] == 0
