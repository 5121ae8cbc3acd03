"""Checks g, h and i: the warm workers on a GPU.

g: no worker initialises CUDA before it forks. The worker imports torch and Triton and then forks
a child per evaluation; CUDA does not survive a fork, so the worker itself must never initialise
it. Detected from outside, in /proc: the NVIDIA device files a process holds open (the driver's
initialisation opens /dev/nvidiactl; a context adds /dev/nvidia0 and /dev/nvidia-uvm), with the
driver library's mapping as supporting detail. The detector is first shown to work on two probe
processes: one that only imports torch and Triton (must read clean) and one that creates a tensor on
the GPU (must read initialised). Then the worker is read right after it says it is ready (before its
first fork) and again after evaluations (before its next fork).

h: GPU memory back to its baseline after 50 evaluations, read with nvidia-smi from outside (this
process never creates a CUDA context, so it adds nothing to the reading).

i: throughput with 1 and N workers on the one GPU (``Evaluator(workers_per_device=N)``).
"""

from __future__ import annotations

import subprocess
import sys
import time

from .procs import cuda_footprint, gpu_memory_used_mib, nvidia_smi, wait_for_line, worker_pid
from .runner import Context

PROBE = ("import sys, time, torch, triton, torch._dynamo\n"
         "if sys.argv[1] == 'init':\n    torch.zeros(1, device='cuda')\n"
         "print('ready', flush=True)\ntime.sleep(600)\n")
MEMORY_EVALUATIONS = 50
MEMORY_SAMPLE_EVERY = 10
#: Allowed difference from the baseline (MiB): nvidia-smi's own granularity and driver bookkeeping.
MEMORY_SLACK_MIB = 64
WORKERS_PER_DEVICE = 4
THROUGHPUT_JOBS = 12


def probe_footprint(mode: str, timeout_s: float = 120) -> dict:
    """Start a probe process ('import' or 'init'), read its footprint once it is ready, end it."""
    proc = subprocess.Popen([sys.executable, "-c", PROBE, mode], stdout=subprocess.PIPE)
    try:
        if not wait_for_line(proc, "ready", timeout_s):
            return {"error": f"the {mode} probe did not get ready", "cuda_initialised": None}
        return cuda_footprint(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def run_fork_check(ctx: Context) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as both:  # the two probes start torch at the same time
        controls = dict(zip(("import_only", "cuda_initialised"), both.map(probe_footprint, ("import", "init"))))
    detector_ok = controls["import_only"].get("cuda_initialised") is False and \
        controls["cuda_initialised"].get("cuda_initialised") is True
    ctx.progress({"controls": controls, "detector_works": detector_ok})
    ready = _guarded(worker_when_ready)
    ctx.progress({"controls": controls, "detector_works": detector_ok, "worker_when_ready": ready})
    after = _guarded(lambda: worker_after_evaluations(ctx))
    return fork_details(controls, detector_ok, ready, after.pop("readings", [after]), after.get("clean", []))


def _guarded(step) -> dict:
    """A step's reading, or what went wrong (a worker that does not start is a finding, not a crash)."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - reported in the check's details
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "cuda_initialised": None}


def worker_when_ready() -> dict:
    """A CUDA worker read right after it says ready: imports done, no request yet, no fork yet."""
    from kernel_env.evaluator.sandbox import SandboxProcess

    proc = SandboxProcess("cuda", "auto", {"CUDA_VISIBLE_DEVICES": "0"})
    try:
        pid = worker_pid(proc.proc.pid)
        reading = cuda_footprint(pid) if pid else {"error": "worker process not found", "cuda_initialised": None}
        return {**reading, "sandboxed": proc.sandboxed}
    finally:
        proc.close()


def worker_after_evaluations(ctx: Context, count: int = 3) -> dict:
    """The pool's worker read after ``count`` evaluations (before its next fork), or after as many
    as the cap allows (read while the last one is still running)."""
    from concurrent.futures import TimeoutError as FuturesTimeout

    from kernel_env import Evaluator

    from .shared import bundled_tasks, tagged

    relu = bundled_tasks("small")["L1/19_ReLU"]
    ev = Evaluator(backend="cuda", workers=1)
    clean = []
    for i in range(count):
        try:
            clean.append(ev.submit(relu, tagged(relu.solution, f"fork {i}"), size="small")
                         .result(timeout=max(ctx.left() - 5, 1)).clean)
        except FuturesTimeout:
            break
    pids = [worker_pid(p) for p in ev.worker_pids()]
    readings = [cuda_footprint(p) for p in pids if p]
    if len(clean) == count:  # else an evaluation is in flight: closing would wait for it
        ev.close()
    return {"readings": readings or [{"error": "worker process not found", "cuda_initialised": None}], "clean": clean}


def fork_details(controls: dict, detector_ok: bool, ready: dict, after: list[dict], clean: list[bool]) -> dict:
    readings = [ready, *after]
    initialised = [r for r in readings if r.get("cuda_initialised")]
    unknown = [r for r in readings if r.get("cuda_initialised") is None]
    if not detector_ok:
        status, text = "failed", "the /proc detector did not tell the two probe processes apart: no verdict"
    elif initialised:
        status, text = "failed", f"a worker holds NVIDIA device files before forking: {initialised[0]['nvidia_files']}"
    elif unknown:
        status, text = "partial", f"no reading of a worker: {unknown[0].get('error')}"
    else:
        status, text = "ok", (f"workers hold no NVIDIA device files when ready and after {len(clean)} evaluations "
                              f"({sum(clean)} clean); detector checked on two probes")
    return {"status": status, "summary": text, "detector_works": detector_ok, "controls": controls,
            "worker_when_ready": ready, "worker_after_evaluations": after, "evaluations_clean": clean}


def run_memory(ctx: Context) -> dict:
    from kernel_env import EvalConfig, Evaluator

    from .shared import Pace, bundled_tasks, tagged

    baseline, source = gpu_memory_used_mib(sys.executable)
    small = bundled_tasks("small")
    tasks = [small[tid] for tid in ("L1/19_ReLU", "L1/20_Softmax", "L1/1_Square_matmul")]
    pace = Pace(ctx, margin=2.0)  # room for the readings after the last batch
    samples = [{"evaluations": 0, "used_mib": baseline, "t": 0.0}]
    t0, done, clean = time.monotonic(), 0, 0
    ev = Evaluator(backend="cuda", config=EvalConfig(warmup=2, iters=10), workers_per_device=4)  # memory, not timing
    ctx.progress(memory_details(baseline, source, samples, done, clean, None, None))
    while done < MEMORY_EVALUATIONS and pace.fits():
        batch = [tasks[(done + k) % len(tasks)] for k in range(min(ev.n_workers, MEMORY_EVALUATIONS - done))]
        jobs = [(task, tagged(task.solution, f"memory {done + k}")) for k, task in enumerate(batch)]
        clean += sum(r.clean for r in pace.timed(ev.map, jobs, size="small"))
        before, done = done, done + len(batch)
        if done // MEMORY_SAMPLE_EVERY > before // MEMORY_SAMPLE_EVERY or done == MEMORY_EVALUATIONS:
            samples.append({"evaluations": done, "used_mib": gpu_memory_used_mib(sys.executable)[0],
                            "t": round(time.monotonic() - t0, 1)})
        ctx.progress(memory_details(baseline, source, samples, done, clean, None, None))
    open_after = gpu_memory_used_mib(sys.executable)[0]
    apps = nvidia_smi("pid,used_memory", what="compute-apps")
    ev.close()
    closed = gpu_memory_used_mib(sys.executable)[0]
    return memory_details(baseline, source, samples, done, clean, open_after, closed, apps)


def memory_details(baseline, source, samples, done, clean, open_after, closed, apps=None) -> dict:
    latest = open_after if open_after is not None else samples[-1]["used_mib"]
    growth = None if baseline is None or latest is None else round(latest - baseline, 1)
    if growth is None:
        status, text = "partial", f"GPU memory could not be read ({source})"
    else:
        cut = done < MEMORY_EVALUATIONS
        status = "failed" if growth > MEMORY_SLACK_MIB else "partial" if cut else "ok"
        text = (f"after {done} evaluations ({clean} clean) GPU memory is {growth:+.0f} MiB from its baseline "
                f"of {baseline:.0f} MiB (limit +{MEMORY_SLACK_MIB})" + (", cut by its cap" if cut else ""))
    return {"status": status, "summary": text, "source": source, "baseline_mib": baseline, "samples": samples,
            "evaluations": done, "clean": clean, "open_after_mib": open_after, "after_close_mib": closed,
            "growth_mib": growth, "compute_apps_while_open": apps}


def run_throughput(ctx: Context) -> dict:
    from kernel_env import Evaluator

    from .shared import bundled_tasks, tagged

    relu = bundled_tasks("small")["L1/19_ReLU"]
    figures = {}
    for n in (1, WORKERS_PER_DEVICE):
        if ctx.left() <= 5:
            break
        with Evaluator(backend="cuda", workers_per_device=n) as ev:
            ev.map([(relu, tagged(relu.solution, f"warm {n} {i}")) for i in range(n)], size="small")  # start them all
            t0 = time.monotonic()
            results = ev.map([(relu, tagged(relu.solution, f"throughput {n} {i}")) for i in range(THROUGHPUT_JOBS)],
                             size="small")
            elapsed = time.monotonic() - t0
        figures[n] = {"jobs": len(results), "clean": sum(r.clean for r in results), "seconds": round(elapsed, 2),
                      "evaluations_per_s": round(len(results) / elapsed, 3), "workers": ev.n_workers}
        ctx.progress({"status": "partial", "summary": "", "figures": figures})
    if len(figures) < 2:
        return {"status": "partial", "summary": "no time for both pool sizes", "figures": figures}
    one, many = figures[1]["evaluations_per_s"], figures[WORKERS_PER_DEVICE]["evaluations_per_s"]
    return {"status": "ok", "figures": figures,
            "summary": f"{one} evaluations/s with 1 worker, {many} with {WORKERS_PER_DEVICE} ({many / one:.2f}x)"}
