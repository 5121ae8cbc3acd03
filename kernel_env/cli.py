"""The ``kernel-env`` command: list and check task suites, evaluate a solution, run the demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from tqdm import tqdm


def _load(source: str, size: str | None, levels=None):
    from tasks import load_tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = load_tasks(source, size=size, levels=levels)
    for w in caught:
        print(f"skipped: {w.message}", file=sys.stderr)
    return tasks


def cmd_tasks_list(args) -> int:
    tasks = _load(args.tasks, None)
    rows = [{"id": t.id, "level": t.level, "sizes": sorted({"full", *t.sizes}), "solution": t.solution is not None,
             "hash": t.hash, "origin": t.origin} for t in tasks]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['id']:45s} sizes={','.join(r['sizes']):18s} solution={'yes' if r['solution'] else 'no '}")
    print(f"{len(rows)} tasks")
    return 0


def cmd_tasks_check(args) -> int:
    from tasks import check_task
    from tasks.loaders import read_tasks
    from tasks.shrink import NotShrinkable, shrink

    tasks = read_tasks(args.tasks)
    reports = []
    for task in tqdm(tasks, desc="checking references", file=sys.stderr, disable=args.json or len(tasks) < 3):
        try:
            ready = shrink(task) if args.size == "small" else task
        except NotShrinkable as exc:
            reports.append({"task_id": task.id, "size": args.size, "ok": False, "seconds": None, "outputs": [],
                            "problems": [str(exc).split(": ", 1)[-1]]})
            continue
        reports.append(check_task(ready, args.size).to_dict())
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            status = "ok  " if r["ok"] else "FAIL"
            secs = f"{r['seconds'] * 1e3:8.1f} ms" if r["seconds"] is not None else "       -   "
            print(f"{status} {r['task_id']:45s} {secs}  {' '.join(r['outputs']):28s} {'; '.join(r['problems'])}")
        ok = sum(r["ok"] for r in reports)
        timed = [r for r in reports if r["seconds"] is not None]
        slowest = max(timed, key=lambda r: r["seconds"], default=None)
        print(f"{ok}/{len(reports)} tasks ok" + (f"; slowest {slowest['task_id']} {slowest['seconds'] * 1e3:.1f} ms" if slowest else ""))
    return 0 if all(r["ok"] for r in reports) else 1


def cmd_eval(args) -> int:
    from kernel_env import EvalConfig, Evaluator

    tasks = {t.id: t for t in _load(args.tasks, None)}
    if args.task not in tasks:
        print(f"error: no task {args.task!r} in {args.tasks} (try: kernel-env tasks list --tasks {args.tasks})",
              file=sys.stderr)
        return 2
    response = sys.stdin.read() if args.solution == "-" else Path(args.solution).read_text()
    with Evaluator(backend=args.backend, workers=1, isolation=args.isolation) as evaluator:
        size = args.size or ("full" if evaluator.backend == "cuda" else "small")
        from tasks import load_tasks

        task = load_tasks([tasks[args.task]], size=size, strict=True)[0]
        result = evaluator.evaluate(task, response, size=size, config=EvalConfig(strict=args.strict))
    if args.json:
        print(result.to_json())
    else:
        print(f"{result.task_id} [{result.backend}, {result.size}] stage={result.stage} compiled={result.compiled} "
              f"correct={result.correct} hacks={result.hacks or '-'}")
        if result.speedup is not None:
            print(f"runtime {result.runtime_ms:.3f} ms  reference {result.ref_runtime_ms:.3f} ms  "
                  f"speedup {result.speedup:.3f}x  coverage {result.coverage:.0%}")
        print(result.feedback)
    return 0 if result.clean else 1


def cmd_demo(args) -> int:
    from kernel_env.demo import run_demo

    return run_demo(backend=args.backend)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kernel-env", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    tasks = sub.add_parser("tasks", help="list or check a task suite").add_subparsers(dest="action", required=True)
    p = tasks.add_parser("list", help="list the tasks of a source")
    p.add_argument("--tasks", default="bundled", help="suite name, folder, KernelBench checkout, .jsonl/.parquet, hf:NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_tasks_list)
    p = tasks.add_parser("check", help="run every reference once and report problems")
    p.add_argument("--tasks", default="bundled")
    p.add_argument("--size", default="small", choices=["small", "full"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_tasks_check)

    p = sub.add_parser("eval", help="evaluate one solution (an LLM reply or a .py file) for one task")
    p.add_argument("--tasks", default="bundled")
    p.add_argument("--task", required=True, help="task id, e.g. L1/19_ReLU")
    p.add_argument("--solution", required=True, help="file with the reply, or - for stdin")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "interpreter"])
    p.add_argument("--size", choices=["small", "full"])
    p.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    p.add_argument("--strict", action="store_true", help="promote static findings to hack codes")
    p.add_argument("--json", action="store_true", help="print the EvalResult as one JSON object")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("demo", help="evaluate scripted submissions on a bundled task and print the results")
    p.add_argument("--backend", default="interpreter", choices=["auto", "cuda", "interpreter"])
    p.set_defaults(fn=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        code = args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # user-facing: one line, not a traceback
        from tasks import TaskError

        if isinstance(exc, (TaskError, FileNotFoundError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    if not getattr(args, "json", False) and args.command != "demo":
        print(f"({time.perf_counter() - start:.1f}s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
