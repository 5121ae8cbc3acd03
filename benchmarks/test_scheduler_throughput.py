"""Pipelined evaluation on one device: throughput with 1 vs 2 workers sharing its slot (checks in
parallel, calibration and timing alone), and what the slot costs a single worker.

On the CPU the "device" is the interpreter's one slot (``timing_slots=True``): the figures show the
scheduler's overhead and how much of an evaluation overlaps, not a GPU's. On a GPU the same
comparison is the GPU check's (``make gpu-check``). Run with ``make bench``.
"""

import time

from kernel_env import Evaluator

TASK = "L1/19_ReLU"


def _tagged(answer: str, tag: str) -> str:
    head, sep, tail = answer.rpartition("```")
    return f"{head}# {tag}\n{sep}{tail}"


def _throughput(task, workers: int, slots: bool, n: int = 8) -> tuple[float, float]:
    """Evaluations per second on a warm pool, and the seconds runs spent waiting for the slot."""
    tag = f"{workers} {slots} {time.time()}"
    with Evaluator(backend="interpreter", workers=workers, timing_slots=slots, seed_secret=5) as ev:
        ev.map([(task, _tagged(task.solution, f"warm {tag} {i}")) for i in range(workers)])
        waited = sum(s.waited_s for s in ev._slots)
        start = time.perf_counter()
        results = ev.map([(task, _tagged(task.solution, f"tput {tag} {i}")) for i in range(n)])
        elapsed = time.perf_counter() - start
        waited = sum(s.waited_s for s in ev._slots) - waited
    assert all(r.clean for r in results)
    return n / elapsed, waited


def test_workers_per_device(benchmark, bundled):
    task = bundled[TASK]
    plain, _ = _throughput(task, 1, slots=False)
    one, one_wait = _throughput(task, 1, slots=True)
    two, two_wait = benchmark.pedantic(lambda: _throughput(task, 2, slots=True), rounds=1, iterations=1)
    benchmark.extra_info.update(
        evals_per_s_1_worker_no_slot=round(plain, 2), evals_per_s_1_worker=round(one, 2),
        evals_per_s_2_workers=round(two, 2), speedup_2_vs_1=round(two / one, 2),
        slot_cost=round(1 - one / plain, 3), slot_wait_s_2_workers=round(two_wait, 2),
        slot_wait_s_1_worker=round(one_wait, 3))
    print(f"\nno slot {plain:.2f}/s; 1 worker {one:.2f}/s; 2 workers {two:.2f}/s (x{two / one:.2f}); "
          f"waits {one_wait:.2f}s / {two_wait:.2f}s")
