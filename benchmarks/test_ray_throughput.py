"""Local pool vs Ray actors on the same machine: throughput with 1 and 2 workers, the per-evaluation
cost of going through Ray, and the driver-side cache hit. Skipped without Ray."""

import statistics

import pytest
from bench_helpers import median_ms, tagged, timed

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'kernel-env[ray]')")

from kernel_env import Evaluator
from kernel_env.evaluator.ray_pool import RayEvaluator

TASK = "L1/19_ReLU"
N = 8


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _make(kind: str, workers: int):
    if kind == "local":
        return Evaluator(backend="interpreter", workers=workers)
    return RayEvaluator(backend="interpreter", actors=workers)


def _throughput(ev, task, tag: str) -> tuple[float, list]:
    ev.map([(task, tagged(task.solution, f"warm {tag} {i}")) for i in range(ev.n_workers)])  # up, reference cached
    elapsed, results = timed(ev.map, [(task, tagged(task.solution, f"tput {tag} {i}")) for i in range(N)])
    assert all(r.clean for r in results)
    return N / elapsed, results


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", ["local", "ray"])
def test_throughput_local_vs_ray(benchmark, cluster, bundled, kind, workers):
    task = bundled[TASK]
    with _make(kind, workers) as ev:
        rate, results = benchmark.pedantic(lambda: _throughput(ev, task, f"{kind}{workers}"), rounds=1, iterations=1)
    benchmark.extra_info.update(kind=kind, workers=workers, evals_per_s=round(rate, 2),
                                eval_total_ms_median=median_ms(r.timings["total"] for r in results))


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_overhead_per_evaluation(benchmark, cluster, bundled, kind):
    """Wall time of one evaluation on a warm single worker minus the time the evaluator itself reports."""
    task = bundled[TASK]
    with _make(kind, 1) as ev:
        ev.evaluate(task, tagged(task.solution, f"warm overhead {kind}"))
        walls, inner = [], []

        def one():
            elapsed, result = timed(ev.evaluate, task, tagged(task.solution, f"overhead {kind} {len(walls)}"))
            walls.append(elapsed)
            inner.append(result.timings["total"])

        benchmark.pedantic(one, rounds=10, iterations=1)
    extra = [w - i for w, i in zip(walls, inner)]
    benchmark.extra_info.update(kind=kind, wall_ms_median=median_ms(walls), outside_evaluator_ms_median=median_ms(extra))


def test_ray_cache_hit_latency(benchmark, cluster, bundled):
    task = bundled[TASK]
    with RayEvaluator(backend="interpreter", actors=1) as ev:
        ev.evaluate(task, task.solution)
        times = []

        def hit():
            elapsed, result = timed(ev.evaluate, task, task.solution)
            times.append(elapsed)
            return result

        result = benchmark.pedantic(hit, rounds=200, iterations=1)
    assert result.timings.get("cache_hit") == 1.0
    benchmark.extra_info.update(median_ms=median_ms(times), p99_ms=round(sorted(times)[int(0.99 * len(times))] * 1e3, 3),
                                mean_ms=round(statistics.mean(times) * 1e3, 3))
