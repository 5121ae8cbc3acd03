"""GPU measurements (CUDA backend, full-size tasks): how much repeated timings of one kernel spread,
and what the profiler adds to an evaluation. Marked ``gpu``; skipped without CUDA."""

import pytest
from bench_helpers import cv, median_ms, tagged

torch = pytest.importorskip("torch")

from kernel_env import EvalConfig, Evaluator

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]
TASKS = ["L1/19_ReLU", "L1/20_Softmax", "L1/1_Square_matmul"]


@pytest.fixture(scope="module")
def gpu_pool():
    with Evaluator(backend="cuda", workers=1) as ev:
        yield ev


@pytest.fixture(scope="module")
def full_tasks():
    from tasks import load_tasks

    return {t.id: t for t in load_tasks("bundled", size="full")}


@pytest.mark.parametrize("task_id", TASKS)
def test_timing_spread(benchmark, gpu_pool, full_tasks, task_id):
    """Coefficient of variation of runtime and speedup over 10 fresh evaluations of one solution."""
    task = full_tasks[task_id]
    gpu_pool.evaluate(task, task.solution)  # reference and compile caches warm
    results = []

    def one():
        results.append(gpu_pool.evaluate(task, tagged(task.solution, f"spread {len(results)}")))

    benchmark.pedantic(one, rounds=10, iterations=1)
    assert all(r.clean for r in results), [r.error or r.hacks for r in results]
    benchmark.extra_info.update(
        task=task_id, runtime_ms_median=median_ms(r.runtime_ms / 1e3 for r in results),
        runtime_cv=round(cv(r.runtime_ms for r in results), 4), speedup_cv=round(cv(r.speedup for r in results), 4),
        device=torch.cuda.get_device_name(0),
    )


@pytest.mark.parametrize("task_id", TASKS)
def test_profiler_overhead(benchmark, gpu_pool, full_tasks, task_id):
    """Evaluation wall time with ``profile=True`` (coverage) vs ``profile=False``, 5 evaluations each."""
    task = full_tasks[task_id]
    gpu_pool.evaluate(task, task.solution)
    totals = {True: [], False: []}

    def both():
        for profile in (False, True):
            r = gpu_pool.evaluate(task, tagged(task.solution, f"profile {len(totals[profile])}"),
                                  config=EvalConfig(profile=profile))
            assert r.clean
            totals[profile].append(r.timings["total"])

    benchmark.pedantic(both, rounds=5, iterations=1)
    on, off = median_ms(totals[True]), median_ms(totals[False])
    benchmark.extra_info.update(task=task_id, eval_ms_profile_on=on, eval_ms_profile_off=off,
                                profiler_overhead_ms=round(on - off, 1), profiler_overhead_pct=round(100 * (on - off) / off, 1))
