"""200 mixed evaluations in a row: the pool keeps its size, its memory, and its verdicts."""

import psutil
from helpers import relu_model, reply, tagged

from kernel_env import EvalConfig, Evaluator

KINDS = [
    ("honest", lambda i, t: tagged(t.solution, f"soak {i}"), lambda r: r.clean),
    ("torch fallback", lambda i, t: relu_model(f"return torch.relu(x)  # {i}"), lambda r: r.hacks == ["no_own_kernel_launched"]),
    ("wrong", lambda i, t: relu_model(f"return relu(x) + {i + 1}"), lambda r: not r.correct and not r.hacks),
    ("raises", lambda i, t: relu_model(f"raise RuntimeError('{i}')"), lambda r: r.stage == "correctness" and not r.correct),
    ("segfault", lambda i, t: relu_model(f"import ctypes\nctypes.string_at({i % 7})\nreturn relu(x)"), lambda r: "SIGSEGV" in (r.error or "")),
    ("syntax", lambda i, t: reply(f"class ModelNew(:\n    {i}"), lambda r: r.stage == "parse"),
]


def _pool_memory(ev) -> int:
    total = 0
    for pid in ev.worker_pids():
        proc = psutil.Process(pid)
        total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    return total


def test_200_mixed_evaluations_keep_the_pool_stable(bundled):
    tasks = [bundled["L1/19_ReLU"], bundled["L1/8_Sigmoid"]]
    with Evaluator(backend="interpreter", workers=2, config=EvalConfig(timeout_s=20)) as ev:
        verdicts, memory = [], []
        for start in range(0, 200, 20):
            batch = [(i, KINDS[i % len(KINDS)], tasks[i % 2 if KINDS[i % len(KINDS)][0] == "honest" else 0])
                     for i in range(start, start + 20)]
            results = ev.map([(task, make(i, task)) for i, (_, make, _), task in batch])
            verdicts += [(name, ok(r)) for (i, (name, _, ok), _), r in zip(batch, results)]
            memory.append(_pool_memory(ev))
            assert len(ev.worker_pids()) == 2
        assert [v for v in verdicts if not v[1]] == []
        assert ev.restarts == 0
        # warm-up settles in the first batches; afterwards memory must not creep
        assert max(memory[3:]) < 1.25 * memory[2], [m >> 20 for m in memory]
