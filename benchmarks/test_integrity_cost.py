"""What the integrity defences cost on the CPU: a whole evaluation of ReLU and of the square matmul
on a warm pool, and each defence's own share measured in-process (snapshot verification, the audit
hook on a forward, fresh inputs for every timed call, the third ghost replay). Run with ``make bench``.
"""

import statistics
import sys
import time

import pytest
import torch
from bench_helpers import tagged

from kernel_env import Evaluator

TASKS = ("L1/19_ReLU", "L1/1_Square_matmul")


@pytest.fixture(scope="module")
def warm_pool():
    with Evaluator(backend="interpreter", workers=1) as ev:
        yield ev


@pytest.mark.parametrize("task_id", TASKS)
def test_evaluation_time(benchmark, warm_pool, bundled, task_id):
    task = bundled[task_id]
    warm_pool.evaluate(task, task.solution)  # reference computed, worker warm
    counter = iter(range(10**6))
    results = []

    def one():
        results.append(warm_pool.evaluate(task, tagged(task.solution, f"integrity {next(counter)}")))

    benchmark.pedantic(one, rounds=9, iterations=1, warmup_rounds=1)
    assert all(r.clean for r in results)
    sandbox = statistics.median(r.timings["sandbox"] for r in results)
    benchmark.extra_info.update(sandbox_ms_median=round(sandbox * 1e3, 1),
                                forward_ms_median=round(statistics.median(r.timings["forward"] for r in results) * 1e3, 1))


def _median_us(fn, n: int = 50) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def test_share_of_each_defence(benchmark, bundled, tmp_path):
    """Per-call costs of the defences, in-process (the sandbox adds nothing to them)."""
    import kernel_env.inside.runner  # noqa: F401 - the harness modules the snapshot covers
    from kernel_env.inside.audit import Audit
    from kernel_env.inside.guards import Integrity
    from kernel_env.inside.inputs import make_inputs

    task = bundled["L1/19_ReLU"]
    module = type(sys)("bench_task")
    exec(compile(task.program("small"), "<task>", "exec"), module.__dict__)
    model = module.Model()
    x = make_inputs(module, 1)[0]
    integrity = Integrity().capture()
    verify_us = _median_us(integrity.verify)
    capture_us = _median_us(lambda: Integrity().capture(), 10)
    draw_us = _median_us(lambda: make_inputs(module, 7))
    forward_plain_us = _median_us(lambda: model(x))
    audit = Audit(str(tmp_path / "candidate.py"), str(tmp_path), lambda code, detail: None)
    audit.hook("open", ("/dev/null", "r", 0))  # warm its caches
    events_per_forward = 20  # generous: an honest forward raises a handful (tensor reprs, imports)
    hook_us = _median_us(lambda: [audit.hook("object.__getattr__", (model, "__code__")) for _ in range(events_per_forward)])
    benchmark.extra_info.update(snapshot_capture_us=capture_us, snapshot_verify_us=verify_us,
                                snapshot_entries=sum(len(s) for _, _, s, _ in integrity.saved),
                                input_draw_us=draw_us, relu_forward_us=forward_plain_us,
                                audit_hook_us_per_20_events=hook_us)
    benchmark(integrity.verify)
    print(f"\nsnapshot: capture {capture_us} us, verify {verify_us} us over "
          f"{sum(len(s) for _, _, s, _ in integrity.saved)} entries; input draw {draw_us} us; "
          f"audit hook {hook_us} us per {events_per_forward} events; relu forward {forward_plain_us} us")
    assert torch.is_tensor(x)
