"""Checks e and f: how much measured runtimes spread, and what the profiler adds to an evaluation.

Both repeat the shipped answers of three full-size tasks, each repetition a fresh copy (a comment
appended inside the code block) so neither the result cache nor the reference-free shortcut
answers. Repetitions go round the tasks (task 1, 2, 3, then again), so a run cut by its cap still
has figures for every task."""

from __future__ import annotations

from .runner import Context
from .stats import cv, median

SPREAD_REPEATS = 10
PROFILE_PAIRS = 5
#: The coefficient of variation tests/kernel_env/evaluator/test_gpu.py accepts.
CV_LIMIT = 0.1
#: Fewer runs than this give no verdict on the spread (a CV of two values says little).
MIN_SPREAD_RUNS = 5


def run_spread(ctx: Context) -> dict:
    from kernel_env import Evaluator

    from .shared import TIMING_TASKS, Pace, bundled_tasks, tagged

    tasks = [bundled_tasks()[tid] for tid in TIMING_TASKS]
    samples: dict[str, list] = {t.id: [] for t in tasks}
    pace = Pace(ctx)
    ev = Evaluator(backend="cuda", workers=1)
    for task in tasks:  # reference, compile and worker warm: not part of the spread
        if not pace.fits():
            return spread_details(samples, cut=True)
        pace.timed(ev.evaluate, task, task.solution, size="full")
    for i in range(SPREAD_REPEATS):
        for task in tasks:
            if not pace.fits():
                return spread_details(samples, cut=True)
            r = pace.timed(ev.evaluate, task, tagged(task.solution, f"spread {i}"), size="full")
            samples[task.id].append({"clean": r.clean, "runtime_ms": r.runtime_ms, "speedup": r.speedup,
                                     "error": r.error})
        ctx.progress(spread_details(samples, cut=False))
    ev.close()
    return spread_details(samples, cut=False)


def spread_details(samples: dict[str, list], cut: bool) -> dict:
    per_task = {}
    for tid, runs in samples.items():
        clean = [s for s in runs if s["clean"]]
        runtimes = [s["runtime_ms"] for s in clean]
        per_task[tid] = {"n": len(clean), "not_clean": len(runs) - len(clean), "runtime_ms": runtimes,
                         "median_ms": median(runtimes), "cv_runtime": _round(cv(runtimes)),
                         "cv_speedup": _round(cv([s["speedup"] for s in clean]))}
    high = [tid for tid, t in per_task.items()
            if t["n"] >= MIN_SPREAD_RUNS and t["cv_runtime"] is not None and t["cv_runtime"] >= CV_LIMIT]
    broken = [tid for tid, t in per_task.items() if t["not_clean"]]
    status = "failed" if high or broken else "partial" if cut else "ok"
    text = ", ".join(f"{tid.split('/')[1]} cv {t['cv_runtime']} (n={t['n']})" for tid, t in per_task.items())
    return {"status": status, "summary": f"runtime CV: {text}" + (" (cut by its cap)" if cut else ""),
            "cv_limit": CV_LIMIT, "above_limit": high, "not_clean": broken, "tasks": per_task}


def run_profiler(ctx: Context) -> dict:
    from kernel_env import EvalConfig, Evaluator

    from .shared import TIMING_TASKS, Pace, bundled_tasks, tagged

    tasks = [bundled_tasks()[tid] for tid in TIMING_TASKS]
    samples: dict[str, dict[bool, list]] = {t.id: {True: [], False: []} for t in tasks}
    pace = Pace(ctx)
    ev = Evaluator(backend="cuda", workers=1)
    for task in tasks:  # warm, as in the spread check
        if not pace.fits():
            return profiler_details(samples, cut=True)
        pace.timed(ev.evaluate, task, task.solution, size="full")
    for i in range(PROFILE_PAIRS):
        for task in tasks:
            for profile in (False, True):  # interleaved: drift on the machine hits both alike
                if not pace.fits():
                    return profiler_details(samples, cut=True)
                r = pace.timed(ev.evaluate, task, tagged(task.solution, f"profile={profile} {i}"), size="full",
                               config=EvalConfig(profile=profile))
                samples[task.id][profile].append({"clean": r.clean, "total_s": r.timings.get("total"),
                                                  "sandbox_s": r.timings.get("sandbox"), "coverage": r.coverage})
        ctx.progress(profiler_details(samples, cut=False))
    ev.close()
    return profiler_details(samples, cut=False)


def profiler_details(samples: dict, cut: bool) -> dict:
    per_task = {}
    for tid, modes in samples.items():
        on = median([s["total_s"] for s in modes[True] if s["clean"]])
        off = median([s["total_s"] for s in modes[False] if s["clean"]])
        per_task[tid] = {"n_on": len(modes[True]), "n_off": len(modes[False]), "eval_s_profile_on": on,
                         "eval_s_profile_off": off,
                         "overhead_s": _round(on - off) if on is not None and off is not None else None,
                         "overhead_pct": _round(100 * (on - off) / off) if on is not None and off else None,
                         "coverage_with_profile": median([s["coverage"] for s in modes[True] if s["coverage"] is not None]),
                         "coverage_without": [s["coverage"] for s in modes[False]][:3], "runs": modes}
    broken = [tid for tid, m in samples.items() if any(not s["clean"] for s in m[True] + m[False])]
    status = "failed" if broken else "partial" if cut else "ok"
    text = ", ".join(f"{tid.split('/')[1]} " + (f"{t['overhead_s']:+.2f} s ({t['overhead_pct']:+.0f}%)"
                                                 if t["overhead_s"] is not None else "no clean pair yet")
                     for tid, t in per_task.items())
    return {"status": status, "summary": f"profiler adds per evaluation: {text}" + (" (cut by its cap)" if cut else ""),
            "not_clean": broken, "tasks": per_task}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
