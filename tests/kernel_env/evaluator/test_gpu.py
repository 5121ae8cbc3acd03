"""CUDA backend: real timing, profiler coverage and launch hooks (skipped without a GPU)."""

import statistics

import pytest
from helpers import KERNEL, relu_model, reply, tagged

from kernel_env import EvalConfig, Evaluator

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda_pool():
    with Evaluator(backend="cuda", workers=1) as ev:
        yield ev


@pytest.mark.parametrize("task_id", ["L1/19_ReLU", "L1/1_Square_matmul", "L2/1_Linear_ReLU"])
def test_bundled_solutions_are_clean_and_timed_on_cuda(cuda_pool, bundled, task_id):
    task = bundled[task_id]
    r = cuda_pool.evaluate(task, task.solution, size="full")
    assert r.clean, r.error
    assert r.backend == "cuda" and r.device.startswith("cuda")
    assert r.runtime_ms > 0 and r.ref_runtime_ms > 0 and r.speedup > 0
    assert 0 < r.coverage <= 1.0
    import torch

    from kernel_env.perf import gpu_for_device

    if gpu_for_device(torch.cuda.get_device_name(0)) is not None:  # a part the spec table prices
        assert r.sol["fraction"] > 0 and r.sol["work"] == "reference ops", r.sol


def test_timing_spread_is_small(cuda_pool, bundled):
    task = bundled["L1/19_ReLU"]
    runtimes = [cuda_pool.evaluate(task, tagged(task.solution, f"cv {i}"), size="full").runtime_ms for i in range(10)]
    cv = statistics.stdev(runtimes) / statistics.mean(runtimes)
    assert cv < 0.1, runtimes


def test_torch_fallback_has_no_launch_on_cuda(cuda_pool, bundled):
    r = cuda_pool.evaluate(bundled["L1/19_ReLU"], relu_model("return torch.relu(x)"), size="full")
    assert r.hacks == ["no_own_kernel_launched"]


LAZY = KERNEL + """

class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return relu(self.linear(x))  # the GEMM stays in cuBLAS
"""


def test_lazy_optimisation_shows_low_coverage_on_cuda(cuda_pool, bundled):
    """Hack 19: the heavy GEMM stays in torch and only the ReLU is a kernel: coverage says so."""
    r = cuda_pool.evaluate(bundled["L2/1_Linear_ReLU"], reply(LAZY), size="full", config=EvalConfig(atol=1e-1, rtol=1e-1))
    assert r.clean and r.coverage is not None and r.coverage < 0.5


def test_the_cuda_timer_runs_on_its_bound_entry_points():
    """The real CudaApi (torch._C entry points bound before the candidate): a forward that replaces
    torch.cuda.synchronize and Event.record for the call changes nothing the timer measures."""
    import torch

    from kernel_env.inside.timing import CudaTimer

    timer = CudaTimer("cuda:0")
    x = torch.randn(1 << 22, device="cuda:0")
    saved = torch.cuda.synchronize, torch.cuda.Event.record
    try:
        def forward():
            torch.cuda.synchronize = lambda *a: None
            torch.cuda.Event.record = lambda *a, **k: None
            return torch.relu(x)

        ms, host_ms, out = timer.time(forward)
    finally:
        torch.cuda.synchronize, torch.cuda.Event.record = saved
    assert out.shape == x.shape and 0 < ms <= host_ms + 0.5


def test_a_cuda_hack_of_each_new_class_is_caught(cuda_pool, bundled):
    """The integrity checks that read CUDA state: a forward that swaps the events the timer would
    look up at call time is named, and an honest kernel is not."""
    task = bundled["L1/19_ReLU"]
    swap = relu_model("torch.cuda.synchronize = lambda *a, **k: None\nreturn relu(x)")
    r = cuda_pool.evaluate(task, swap, size="full")
    assert "timer_tampering" in r.hacks
    honest = cuda_pool.evaluate(task, tagged(task.solution, "cuda honest"), size="full")
    assert honest.clean, (honest.hacks, honest.error)


def test_model_on_cuda_puts_the_model_next_to_the_measurement(bundled):
    """The side interpreter run's model arrives with the GPU's measured figures, for calibration."""
    task = bundled["L1/19_ReLU"]
    with Evaluator(backend="cuda", workers=1, config=EvalConfig(model_on_cuda=True, gpu="H200")) as ev:
        r = ev.evaluate(task, task.solution, size="full")
    assert r.clean and r.speedup > 0
    assert r.modelled["gpu"] == "H200" and r.modelled["speedup"] > 0
