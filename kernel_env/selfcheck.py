"""Quick in-process check of bundled tasks for authors: ``python -m kernel_env.selfcheck [FILE ...]``.

Runs each reference at ``small`` and its shipped solution in Triton's interpreter, one naive
comparison per seed. It trusts the solution's process (no sandbox): use it on our own files only;
the evaluator is the real judge.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from tasks.check import check_task
from tasks.loaders import load_tasks, task_from_file

from .evaluator.submission import parse_submission


def check_solution(task, size: str = "small", seeds=(0, 1, 2)) -> str:
    module = task.materialise(size)
    code = parse_submission(task.solution).code
    cand = types.ModuleType(f"solution_{task.name}")
    with tempfile.TemporaryDirectory(prefix="kernel-env-selfcheck-") as folder:
        path = Path(folder) / f"{task.name}.py"  # Triton reads a kernel's source from its file
        path.write_text(code)
        exec(compile(code, str(path), "exec"), cand.__dict__)
        return _compare(module, cand, seeds)


def _compare(module, cand, seeds) -> str:
    worst = 0.0
    for seed in seeds:
        torch.manual_seed(seed)
        inputs = module.get_inputs()
        torch.manual_seed(seed)
        ref = module.Model(*module.get_init_inputs())
        torch.manual_seed(seed)
        new = cand.ModelNew(*module.get_init_inputs())
        with torch.no_grad():
            want = ref(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs])
            got = new(*inputs)
        want = want if isinstance(want, (tuple, list)) else [want]
        got = got if isinstance(got, (tuple, list)) else [got]
        for w, g in zip(want, got, strict=True):
            if w.shape != g.shape or w.dtype != g.dtype:
                return f"shape/dtype {tuple(g.shape)} {g.dtype} != {tuple(w.shape)} {w.dtype}"
            worst = max(worst, (w.double() - g.double()).abs().max().item())
            if not torch.allclose(w, g, atol=1e-2, rtol=1e-2):
                return f"mismatch: max abs error {worst:.3g}"
    return f"ok (max abs error {worst:.2e})"


def main(argv: list[str]) -> int:
    tasks = [task_from_file(Path(a), int(Path(a).parent.name.removeprefix("level"))) for a in argv] or load_tasks("bundled")
    bad = 0
    for task in tasks:
        report = check_task(task)
        start = time.perf_counter()
        verdict = check_solution(task) if task.solution else "NO SOLUTION"
        elapsed = time.perf_counter() - start
        ok = report.ok and verdict.startswith("ok")
        bad += not ok
        print(f"{'PASS' if ok else 'FAIL'} {task.id:40s} ref {report.seconds or 0:.3f}s  sol {elapsed:.2f}s  {verdict}  {'; '.join(report.problems)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
