"""Evaluator performance on the CPU: harness overhead on a warm pool vs a cold process per
evaluation, cache-hit latency, and throughput with one and two workers.

Overhead = wall time of an evaluation minus the time spent inside candidate and reference forwards
(``timings["forward"]`` is measured around every model call in the sandbox). Run with ``make bench``.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kernel_env import Evaluator
from kernel_env.evaluator.submission import parse_submission

TASK = "L1/19_ReLU"
COLD_SCRIPT = Path(__file__).with_name("cold_eval.py")


def _tagged(answer: str, tag: str) -> str:
    head, sep, tail = answer.rpartition("```")
    return f"{head}# {tag}\n{sep}{tail}"


def _cold_overheads(task, runs: int = 3, trials: int = 5) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        program, code = Path(tmp, "task.py"), Path(tmp, "cand.py")
        program.write_text(task.program("small"))
        code.write_text(parse_submission(task.solution).code)
        out = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(COLD_SCRIPT), str(program), str(code), str(trials)],
                                  capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            import json

            out.append(wall - json.loads(done.stdout.strip().splitlines()[-1])["forward_s"])
        return out


@pytest.fixture(scope="module")
def warm_pool():
    with Evaluator(backend="interpreter", workers=1) as ev:
        yield ev


def test_warm_overhead_vs_cold_baseline(benchmark, warm_pool, bundled):
    task = bundled[TASK]
    warm_pool.evaluate(task, task.solution)  # reference cached, worker warm
    counter = iter(range(10**6))
    results = []

    def one():
        results.append(warm_pool.evaluate(task, _tagged(task.solution, f"bench {next(counter)}")))

    benchmark.pedantic(one, rounds=15, iterations=1, warmup_rounds=2)
    assert all(r.clean for r in results)
    overheads = [r.timings["total"] - r.timings.get("forward", 0.0) for r in results]
    cold = _cold_overheads(task)
    warm_ms, cold_ms = statistics.median(overheads) * 1e3, statistics.median(cold) * 1e3
    benchmark.extra_info.update(
        warm_overhead_ms_median=round(warm_ms, 1), cold_overhead_ms_median=round(cold_ms, 1),
        ratio=round(cold_ms / warm_ms, 1), forward_ms_median=round(statistics.median(r.timings.get("forward", 0) for r in results) * 1e3, 1),
    )
    print(f"\nwarm overhead {warm_ms:.0f} ms, cold overhead {cold_ms:.0f} ms, ratio {cold_ms / warm_ms:.1f}x")


def test_cache_hit_latency(benchmark, warm_pool, bundled):
    task = bundled[TASK]
    warm_pool.evaluate(task, task.solution)
    result = benchmark(warm_pool.evaluate, task, task.solution)
    assert result.timings.get("cache_hit") == 1.0
    if benchmark.stats:  # None when benchmarks are disabled
        benchmark.extra_info["median_ms"] = round(benchmark.stats.stats.median * 1e3, 3)


def _throughput(workers: int, task, n: int = 8, tag: str = "") -> float:
    with Evaluator(backend="interpreter", workers=workers) as ev:
        ev.map([(task, _tagged(task.solution, f"warm {tag} {i}")) for i in range(workers)])  # start workers
        start = time.perf_counter()
        results = ev.map([(task, _tagged(task.solution, f"tput {tag} {i}")) for i in range(n)])
        elapsed = time.perf_counter() - start
    assert all(r.clean for r in results)
    return n / elapsed


def test_two_workers_vs_one(benchmark, bundled):
    task = bundled[TASK]
    one = _throughput(1, task, tag="one")
    two = benchmark.pedantic(lambda: _throughput(2, task, tag=f"two {time.time()}"), rounds=1, iterations=1)
    benchmark.extra_info.update(evals_per_s_1_worker=round(one, 2), evals_per_s_2_workers=round(two, 2),
                                speedup=round(two / one, 2))
    print(f"\n1 worker {one:.2f} eval/s, 2 workers {two:.2f} eval/s, x{two / one:.2f}")
