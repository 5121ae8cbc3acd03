"""The ``kernel-env`` command: list and check task suites, evaluate a solution (and show its modelled GPU
time), play an episode, benchmark solutions (fast_p), run the demo, show or clear the disk cache."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
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
    """Shrink and check every task, one line each as it finishes (a slow or hanging task is cut off
    after ``--task-timeout-s``); JSON prints all reports at the end."""
    from kernel_env.scoring.tolerance import judged_by
    from tasks.check import check_tasks
    from tasks.loaders import read_tasks

    tasks = read_tasks(args.tasks)
    reports = []
    bar = tqdm(total=len(tasks), desc="checking references", file=sys.stderr, disable=args.json or len(tasks) < 3)
    for report in check_tasks(tasks, args.size, args.task_timeout_s or None, judged_by(args.tolerance, args.dtype)):
        r = report.to_dict()
        reports.append(r)
        bar.update()
        if not args.json:
            status = "ok  " if r["ok"] else "FAIL"
            secs = f"{r['seconds'] * 1e3:8.1f} ms" if r["seconds"] is not None else "       -   "
            bar.write(f"{status} {r['task_id']:45s} {secs}  {' '.join(r['outputs']):28s} {'; '.join(r['problems'])}",
                      file=sys.stdout)
    bar.close()
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        ok = sum(r["ok"] for r in reports)
        timed = [r for r in reports if r["seconds"] is not None]
        slowest = max(timed, key=lambda r: r["seconds"], default=None)
        tail = f"; slowest {slowest['task_id']} {slowest['seconds'] * 1e3:.1f} ms" if slowest else ""
        print(f"{ok}/{len(reports)} tasks ok{tail}")
    return 0 if all(r["ok"] for r in reports) else 1


def _evaluate(args):
    """Load the task, read the solution and evaluate it once: the one code path ``eval`` and ``model``
    share."""
    from kernel_env import Evaluator
    from kernel_env.evaluator import default_size
    from kernel_env.evaluator.submission import decode_reply
    from tasks import load_tasks

    tasks = {t.id: t for t in _load(args.tasks, None)}
    if args.task not in tasks:
        raise ValueError(f"no task {args.task!r} in {args.tasks} (try: kernel-env tasks list --tasks {args.tasks})")
    raw = sys.stdin.buffer.read() if args.solution == "-" else Path(args.solution).read_bytes()
    response = decode_reply(raw)
    with Evaluator(backend=args.backend, workers=1, isolation=args.isolation) as evaluator:
        size = args.size or default_size(evaluator.backend)
        task = load_tasks([tasks[args.task]], size=size, strict=True)[0]
        return evaluator.evaluate(task, response, size=size, config=_eval_config(args))


def _eval_config(args):
    """``--strict``, ``--dtype``, ``--tolerance`` and ``--gpu`` (the GPU the modelled time is priced on)
    as an EvalConfig."""
    from kernel_env import EvalConfig

    config = EvalConfig(strict=args.strict, dtype=args.dtype, tolerance=args.tolerance)
    return config if getattr(args, "gpu", None) is None else config.with_(gpu=args.gpu)


def _add_precision_args(p: argparse.ArgumentParser) -> None:
    from kernel_env.protocol import DTYPES
    from kernel_env.scoring.tolerance import DEFAULT_PRESET, PRESETS

    p.add_argument("--dtype", default="fp32", choices=list(DTYPES),
                   help="run the task at this precision (inputs, parameters and the reference cast to it)")
    p.add_argument("--tolerance", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help="the tolerance preset outputs are judged by (drkernel: 1e-2; kernelbench: 1e-4 at fp32)")


def _gpu_name(text: str) -> str:
    """``--gpu``: a GPU the model has specs for (``kernel_env.perf.GPUS``, or one of its aliases)."""
    from kernel_env.perf import gpu

    try:
        return gpu(text).name
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None


def format_modelled(m: dict) -> str:
    """The modelled breakdown ``model`` and ``eval --explain`` print: a header (GPU, both times, speedup,
    bound, flags), then every row of both sides, heaviest first, as ``Modelled.explain`` lays them out."""
    from dataclasses import fields

    from kernel_env.perf import Modelled, Row

    keys = {f.name for f in fields(Row)}

    def rows(side: str) -> tuple:
        return tuple(Row(**{k: v for k, v in r.items() if k in keys}) for r in m.get(side) or ())

    model = Modelled(m["gpu"], m["runtime_us"], m["ref_runtime_us"], m["speedup"], m["bound"], rows("rows"),
                     rows("ref_rows"), tuple(m.get("flags") or ()))
    head, *lines = model.explain(top=max(len(model.rows), len(model.ref_rows), 1)).splitlines()
    return "\n".join([f"{head}; flags: {', '.join(model.flags) or '-'}", *lines])


def no_model_reason(result) -> str:
    """Why a result carries no model: only correct results are modelled, so say what went wrong."""
    error = (result.error or "").strip().splitlines()[0] if result.error else ""
    if result.harness_error:
        return f"no model: the evaluator failed, not the submission: {error}"
    if not result.correct:
        return f"no model: the result is not correct (stage {result.stage})" + (f": {error}" if error else "")
    if result.hacks:
        return f"no model: the result has hack codes: {', '.join(result.hacks)}"
    return "no model: the evaluator recorded no modelled time for this result"


def explain(result) -> str:
    """The breakdown, or why there is none."""
    return format_modelled(result.modelled) if result.modelled else no_model_reason(result)


def cmd_eval(args) -> int:
    from kernel_env.scoring.rewards import RewardConfig, speed_source

    result = _evaluate(args)
    config = RewardConfig.of(args.reward)
    reward = config(result)
    if args.json:
        print(json.dumps({**result.to_dict(), "reward": reward}))
    else:
        print(f"{result.task_id} [{result.backend}, {result.size}] stage={result.stage} compiled={result.compiled} "
              f"correct={result.correct} hacks={result.hacks or '-'}")
        if result.speedup is not None:
            print(f"runtime {result.runtime_ms:.3f} ms  reference {result.ref_runtime_ms:.3f} ms  "
                  f"speedup {result.speedup:.3f}x  coverage {result.coverage:.0%}")
        print(f"reward ({args.reward}, {speed_source(result, config.speed)} speedup): {reward:.3f}")
        print(result.feedback)
        if args.explain:
            print(explain(result))
    return 0 if result.clean else 1


def cmd_model(args) -> int:
    result = _evaluate(args)
    if args.json:
        print(json.dumps({"task_id": result.task_id, "backend": result.backend, "size": result.size,
                          "correct": result.correct, "hacks": list(result.hacks), "modelled": result.modelled,
                          "no_model": None if result.modelled else no_model_reason(result)}))
    else:
        print(explain(result))
    return 0 if result.modelled else 1


#: ``kernel_env.evaluator.disk_cache.NAMESPACES``, spelled out: importing the evaluator to build the
#: parser would import torch for every command.
CACHE_NAMESPACES = ("references", "compiles")


def _size_text(n: float) -> str:
    unit = "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if n < 1024:
            break
        n, unit = n / 1024, bigger
    return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"


def cmd_cache_info(args) -> int:
    from kernel_env.evaluator.disk_cache import DiskCache

    info = DiskCache().info()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['dir']}: {_size_text(info['bytes'])} of {_size_text(info['max_bytes'])}")
    for name, space in info["namespaces"].items():
        print(f"  {name:12s} {space['entries']:7d} entries {_size_text(space['bytes']):>11s}")
    print(f"persistent secret: {'present' if info['secret'] else 'none yet'}")
    return 0


def cmd_cache_clear(args) -> int:
    from kernel_env.evaluator.disk_cache import DiskCache

    cache = DiskCache()
    removed = cache.clear(args.namespace)
    what = f"{removed} {args.namespace or 'cache'} entries"
    if args.secret and cache.drop_secret():
        what += " and the persistent secret"
    print(f"removed {what} from {cache.root}")
    return 0


def cmd_demo(args) -> int:
    from kernel_env.demo import run_demo

    return run_demo(backend=args.backend)


#: A line holding only this ends one reply in ``kernel-env play``.
SEPARATOR = "%%%"


def read_responses(stream) -> Iterator[str]:
    """Responses from a stream: separated by a line holding only ``%%%``; EOF ends the last one."""
    lines: list[str] = []
    for line in iter(stream.readline, ""):
        if line.strip() == SEPARATOR:
            yield "".join(lines)
            lines = []
        else:
            lines.append(line)
    if "".join(lines).strip():
        yield "".join(lines)


def cmd_play(args) -> int:
    import gymnasium

    import kernel_env  # noqa: F401 - registers the ids

    from .demo import reward_table

    options = {"tasks": args.tasks, "backend": args.backend, "size": args.size, "max_turns": args.max_turns,
               "reward": args.reward, "workers": 1}
    env = gymnasium.make(args.env, **{k: v for k, v in options.items() if v is not None})
    inner = env.unwrapped
    interactive = sys.stdin.isatty()
    try:
        obs, info = env.reset(seed=args.seed, options={"task_id": args.task} if args.task else None)
        print(f"=== {info['task_id']} ({inner.backend} backend, {inner.size} size, up to {inner.max_turns} turns) ===")
        print(f"--- user ---\n{obs}\n", flush=True)
        responses = read_responses(sys.stdin)
        done = False
        while not done:
            if interactive:
                print(f"Paste your reply for turn {inner.turn + 1}; end it with a line holding only {SEPARATOR} "
                      "(Ctrl-D ends the episode).", file=sys.stderr)
            reply = next(responses, None)
            if reply is None:
                print(f"(no more responses: the episode stops after {inner.turn} turn(s))")
                break
            if not interactive:
                print(f"--- assistant ---\n{reply.strip()}\n")
            with _spinner(f"evaluating turn {inner.turn + 1}"):
                obs, reward, terminated, truncated, info = env.step(reply)
            print(f"--- user (reward {reward:.3f}) ---\n{obs}\n", flush=True)
            done = terminated or truncated
        if inner.results:
            replies = [m["content"] for m in inner.messages if m["role"] == "assistant"]
            print(reward_table([_first_line(r) for r in replies], inner.results, inner.rewards))
            print(f"\nreturn {sum(inner.rewards):.3f}, best speedup {inner.best_speedup:.4f}x")
        return 0
    finally:
        env.close()


def _first_line(text: str, width: int = 40) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "(empty)")
    return line if len(line) <= width else line[: width - 3] + "..."


class _spinner:
    """A tqdm line on stderr while one evaluation runs (it has no finer progress to show)."""

    def __init__(self, desc: str):
        self.bar = tqdm(total=1, desc=desc, file=sys.stderr, leave=False, bar_format="{desc}... {elapsed}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def cmd_bench(args) -> int:
    from kernel_env import Evaluator, bench
    from kernel_env.evaluator import default_size

    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    with Evaluator(backend=args.backend, workers=args.workers, isolation=args.isolation) as evaluator:
        backend = evaluator.backend
        size = args.size or default_size(backend)
        tasks = _load(args.tasks, size, levels)
        if not tasks:
            print(f"error: no tasks in {args.tasks}" + (f" at levels {args.levels}" if levels else ""), file=sys.stderr)
            return 2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            solutions = bench.load_solutions(args.solutions, tasks)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        missing = [t.id for t in tasks if t.id not in solutions]
        if missing:
            print(f"{len(missing)} task(s) without a solution count as failures: {', '.join(missing[:8])}"
                  + (" ..." if len(missing) > 8 else ""), file=sys.stderr)
        rows = bench.run_bench(tasks, solutions, evaluator, size=size, config=_eval_config(args))
    summary = bench.summarize(rows)
    meta = {"tasks": args.tasks, "solutions": args.solutions, "backend": backend, "size": size,
            "strict": args.strict, "dtype": args.dtype, "tolerance": args.tolerance}
    speedups = summary["all"]["speedups"]
    print(f"fast_p on {speedups} speedups for {args.solutions} on {args.tasks} ({backend} backend, {size} size, "
          f"{len(tasks)} tasks)")
    print(bench.format_table(summary))
    if speedups.startswith("modelled"):
        print("(modelled: a roofline model of the work the kernels did, priced on a GPU; not a measurement)")
    if backend == "interpreter" and "measured" in speedups:
        print("(measured interpreter timings are CPU figures: fast_p for p > 0 says nothing about GPU speed)")
    failures = [r for r in rows if r["submitted"] and not r["clean"]]
    for r in failures[:20]:
        what = ", ".join(r["hacks"]) if r["hacks"] else f"{r['stage']}: {r['error']}"
        print(f"  not clean: {r['task_id']}: {what}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(bench.report(rows, summary, meta), indent=2))
        print(f"wrote {args.json_out}", file=sys.stderr)
    if args.plot:
        bench.plot(rows, args.plot, title=f"fast_p: {args.solutions} on {args.tasks} ({backend})")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """The options of one evaluation, shared by ``eval`` and ``model`` (both go through ``_evaluate``)."""
    p.add_argument("--tasks", default="bundled")
    p.add_argument("--task", required=True, help="task id, e.g. L1/19_ReLU")
    p.add_argument("--solution", required=True, help="file with the reply, or - for stdin")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "interpreter"])
    p.add_argument("--size", choices=["small", "full"])
    p.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    p.add_argument("--strict", action="store_true", help="promote static findings to hack codes")
    p.add_argument("--gpu", type=_gpu_name, help="GPU the modelled time is priced on (kernel_env.perf.GPUS; "
                                                 "default: the evaluator's, H100)")
    _add_precision_args(p)


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
    p.add_argument("--task-timeout-s", type=float, default=60.0,
                   help="time limit per task, shrinking included (0: none); a task over it is reported and skipped")
    _add_precision_args(p)  # degeneracy is judged by the evaluator's tolerance at this dtype
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_tasks_check)

    p = sub.add_parser("eval", help="evaluate one solution (an LLM reply or a .py file) for one task")
    _add_evaluation_args(p)
    p.add_argument("--reward", default="drkernel", help="reward preset for the reported reward")
    p.add_argument("--json", action="store_true", help="print the EvalResult and its reward as one JSON object")
    p.add_argument("--explain", action="store_true", help="then print the modelled GPU time breakdown")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("model", help="evaluate one solution and print its modelled GPU time, row by row")
    _add_evaluation_args(p)
    p.add_argument("--json", action="store_true", help="print the modelled breakdown as one JSON object")
    p.set_defaults(fn=cmd_model)

    p = sub.add_parser("play", help="play an episode yourself: paste or pipe one reply per turn",
                       description="Replies are read from stdin, separated by a line holding only %%%; "
                                   "EOF ends the last one (and the episode).")
    p.add_argument("--env", default="kernel_env/KernelBench-v0", help="a registered id (see kernel_env.ENV_IDS)")
    p.add_argument("--task", help="task id, e.g. L1/19_ReLU (default: chosen from --seed)")
    p.add_argument("--tasks", help="task source (default: the bundled suite)")
    p.add_argument("--seed", type=int)
    p.add_argument("--backend", choices=["auto", "cuda", "interpreter"])
    p.add_argument("--size", choices=["small", "full"])
    p.add_argument("--max-turns", type=int)
    p.add_argument("--reward", choices=["drkernel", "correctness", "speedup", "log_speedup"])
    p.set_defaults(fn=cmd_play)

    p = sub.add_parser("bench", help="score one solution per task: fast_p, correctness, hack rate, coverage")
    p.add_argument("--tasks", default="bundled", help="task source")
    p.add_argument("--solutions", required=True,
                   help="'bundled' (shipped answers), a folder (L1/19_ReLU.md or 19_ReLU.md), or a .jsonl file "
                        "of {\"task_id\", \"response\"} lines")
    p.add_argument("--levels", help="comma-separated levels to keep, e.g. 1,2")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "interpreter"])
    p.add_argument("--size", choices=["small", "full"])
    p.add_argument("--workers", type=int, help="evaluator workers (default: one per GPU, or per core on CPU)")
    p.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    p.add_argument("--strict", action="store_true", help="promote static findings to hack codes")
    _add_precision_args(p)
    p.add_argument("--json-out", metavar="PATH", help="write metrics and per-task results as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of fast_p against p")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("demo", help="play one scripted episode (hack, broken, correct) and print the transcript")
    p.add_argument("--backend", default="interpreter", choices=["auto", "cuda", "interpreter"])
    p.set_defaults(fn=cmd_demo)

    cache = sub.add_parser("cache", help="show or clear the disk cache (stored references and compiles)",
                           description="The folder is $KERNEL_ENV_CACHE_DIR, else $XDG_CACHE_HOME/kernel-env, else "
                                       "~/.cache/kernel-env; $KERNEL_ENV_CACHE_BYTES sets its budget (default 2G).")
    actions = cache.add_subparsers(dest="action", required=True)
    p = actions.add_parser("info", help="the folder, its budget, entries and bytes per namespace")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_cache_info)
    p = actions.add_parser("clear", help="remove stored entries (all, or one namespace)")
    p.add_argument("--namespace", choices=CACHE_NAMESPACES, help="only this namespace")
    p.add_argument("--secret", action="store_true",
                   help="also forget the persistent seed secret (the next evaluator draws new seed sets)")
    p.set_defaults(fn=cmd_cache_clear)
    return parser


def quiet_on_closed_pipe(run) -> int:
    """``run()``, ending quietly when stdout is closed under us (``kernel-env tasks list | head``): the
    reader has what it wanted, and Python's flush at exit would print a second traceback."""
    try:
        code = run()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    return quiet_on_closed_pipe(lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
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
    if not getattr(args, "json", False) and args.command not in ("demo", "play"):
        print(f"({time.perf_counter() - start:.1f}s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
