"""Check c: every bundled task's shipped answer at full size on CUDA, as ``kernel-env bench`` scores
them (fast_p, correctness, coverage), with the model beside each measurement when the evaluator
offers it (``EvalConfig(model_on_cuda=True, gpu=<this GPU's spec>)``): the rank correlation of
measured and modelled speedups (and runtimes) is the model's first calibration against a GPU.

The tasks are submitted at once, the levels interleaved, and read as they finish; progress goes to
the report after each, and when the cap comes the rest are cancelled: as many tasks as the cap
allows."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures import as_completed

from .runner import Context
from .stats import rank_correlation

#: Workers on the GPU (checks overlap, timings alone); the side model gets as many interpreter workers.
BUNDLED_WORKERS_PER_DEVICE = 4


def run(ctx: Context) -> dict:
    from kernel_env import EvalConfig, Evaluator, bench
    from kernel_env.perf.calibrate import Pair

    from . import shared

    spec = shared.spec_name(shared.device_name())
    config = EvalConfig(model_on_cuda=True, gpu=spec or "H100")
    tasks = interleaved_by_level(list(shared.bundled_tasks().values()))
    meta = {"gpu_spec": spec, "config": config.to_dict(), "total": len(tasks),
            "workers_per_device": BUNDLED_WORKERS_PER_DEVICE}
    if spec is None:
        meta["model_note"] = "this GPU is not in kernel_env.perf.GPUS: the model is priced on H100"
    rows: dict[str, dict] = {}
    pairs: list = []
    ev = Evaluator(backend="cuda", config=config, workers_per_device=BUNDLED_WORKERS_PER_DEVICE)
    futures = {ev.submit(t, t.solution, size="full"): t for t in tasks if t.solution}
    try:
        for future in as_completed(futures, timeout=max(ctx.left(), 0.0)):
            task, result = futures[future], future.result()
            rows[task.id] = {**bench._row(task, result), **shared.compact(result)}
            pairs.append(Pair.of(result) if result.clean else None)
            meta["calibration"] = calibration_of(pairs)
            ctx.progress(details(rows, tasks, meta, bench))
    except FuturesTimeout:  # the cap: keep what is done; closing would wait for the evaluation in
        for future in futures:  # flight, so the runner ends this process (and its workers) instead
            future.cancel()
        return details(rows, tasks, meta, bench)
    ev.close()
    return details(rows, tasks, meta, bench)


def calibration_of(pairs: list) -> dict:
    """The model against this GPU (``kernel_env.perf.calibrate``): the constants it suggests."""
    from kernel_env.perf.calibrate import calibration

    return calibration([p for p in pairs if p is not None])


def interleaved_by_level(tasks: list) -> list:
    """L1, L2, L3, L1, L2, ...: a run cut by its cap still has every level in its correlation."""
    levels: dict[int, list] = {}
    for task in tasks:
        levels.setdefault(task.level, []).append(task)
    queues = [levels[level] for level in sorted(levels)]
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


def details(rows: dict, tasks: list, meta: dict, bench) -> dict:
    done = [rows[t.id] for t in tasks if t.id in rows]
    summary = bench.summarize(done) if done else {}
    clean = [r for r in done if r["clean"]]
    correlations = {
        "speedup": rank_correlation(clean, "speedup", "modelled_speedup"),
        "runtime": rank_correlation(clean, "runtime_ms", "modelled_runtime_us"),
        "ref_runtime": rank_correlation(clean, "ref_runtime_ms", "modelled_ref_runtime_us"),
    }
    complete = len(done) == meta["total"]
    status = ("failed" if len(clean) < len(done) else "ok" if complete else "partial") if done else "partial"
    overall = summary.get("all", {})
    rho = correlations["speedup"]["rho"]
    text = (f"{len(done)}/{meta['total']} tasks, {len(clean)} clean, fast_1 {overall.get('fast_p', {}).get('1', 0):.2f}, "
            f"mean coverage {_pct(overall.get('mean_coverage'))}, "
            f"Spearman measured vs modelled speedup {rho} (n={correlations['speedup']['n']})")
    return {"status": status, "summary": text, **meta, "done": len(done), "clean": len(clean),
            "correlations": correlations, "fast_p": summary, "table": bench.format_table(summary) if summary else "",
            "not_clean": [{"task_id": r["task_id"], "stage": r["stage"], "hacks": r["hacks"], "error": r["error"]}
                          for r in done if not r["clean"]],
            "rows": done}


def _pct(value) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"
