"""Check d: what the interpreter cannot vouch for on its own, on CUDA. The backward suite's answers at
full size (forward and gradients timed together, the backward's hack checks with a GPU's autograd
threads), then the bundled answers at bfloat16 (the interpreter computes on raw bf16 bits, so only a GPU
says which answers are right at that precision). Submitted at once, read as they finish, cut at the cap."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures import as_completed

from .runner import Context

VARIANT_WORKERS_PER_DEVICE = 4


def run(ctx: Context) -> dict:
    from kernel_env import EvalConfig, Evaluator
    from tasks import load_tasks

    from . import shared

    jobs = [("backward", t, EvalConfig()) for t in load_tasks("backward")]
    jobs += [("bf16", t, EvalConfig(dtype="bf16")) for t in shared.bundled_tasks().values() if t.level == 1]
    rows: dict[str, list] = {"backward": [], "bf16": []}
    ev = Evaluator(backend="cuda", workers_per_device=VARIANT_WORKERS_PER_DEVICE)
    futures = {ev.submit(t, t.solution, size="full", config=config): (kind, t) for kind, t, config in jobs if t.solution}
    try:
        for future in as_completed(futures, timeout=max(ctx.left(), 0.0)):
            kind, _ = futures[future]
            rows[kind].append(shared.compact(future.result()))
            ctx.progress(details(rows, len(futures)))
    except FuturesTimeout:  # the cap: keep what is done (the runner ends this process and its workers)
        for future in futures:
            future.cancel()
        return details(rows, len(futures))
    ev.close()
    return details(rows, len(futures))


def details(rows: dict[str, list], total: int) -> dict:
    done = sum(map(len, rows.values()))
    counts = {kind: f"{sum(r['clean'] for r in found)}/{len(found)} clean" for kind, found in rows.items()}
    status = "ok" if done == total and all(r["clean"] for found in rows.values() for r in found) else (
        "partial" if done < total else "failed")
    return {"status": status, "summary": f"{done}/{total} done; backward {counts['backward']}, bf16 {counts['bf16']}",
            "total": total, **{kind: found for kind, found in rows.items()},
            "not_clean": [{"kind": kind, "task_id": r["task_id"], "stage": r["stage"], "hacks": r["hacks"],
                           "error": r["error"]} for kind, found in rows.items() for r in found if not r["clean"]]}
