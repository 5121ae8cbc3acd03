"""What the evaluation checks share: the tasks, fresh copies of an answer, the GPU's spec name, and
a compact record of a result. Imported only inside check processes (it needs the project)."""

from __future__ import annotations

import time

#: The tasks the timing checks repeat (as benchmarks/test_gpu.py): elementwise, reduction, matmul.
TIMING_TASKS = ("L1/19_ReLU", "L1/20_Softmax", "L1/1_Square_matmul")


def bundled_tasks(size: str | None = None) -> dict:
    from tasks import load_tasks

    return {t.id: t for t in load_tasks("bundled", size=size)}


def tagged(answer: str, tag: str) -> str:
    """The same answer with a comment inside its code block: new code, so the result cache misses."""
    head, sep, tail = answer.rpartition("```")
    return f"{head}# gpucheck: {tag}\n{sep}{tail}"


def device_name() -> str | None:
    """GPU 0's name from nvidia-smi, so this process need not create a CUDA context."""
    from .procs import nvidia_smi

    rows = nvidia_smi("name")
    return rows[0]["name"] if rows else None


def spec_name(name: str | None) -> str | None:
    """The ``kernel_env.perf.GPUS`` entry for a device name, or None for a part not in the table."""
    from kernel_env.perf import gpu_for_device

    spec = gpu_for_device(name)
    return spec.name if spec else None


def compact(result) -> dict:
    """The fields of an EvalResult the report needs (no feedback text, no modelled rows)."""
    modelled = result.modelled or {}
    return {"task_id": result.task_id, "clean": result.clean, "correct": result.correct, "stage": result.stage,
            "hacks": list(result.hacks), "error": (result.error or "").splitlines()[0][:300] if result.error else None,
            "speedup": result.speedup, "runtime_ms": result.runtime_ms, "ref_runtime_ms": result.ref_runtime_ms,
            "coverage": result.coverage, "isolation": result.isolation, "backend": result.backend,
            "size": result.size, "modelled_gpu": modelled.get("gpu"), "modelled_speedup": modelled.get("speedup"),
            "modelled_runtime_us": modelled.get("runtime_us"), "modelled_ref_runtime_us": modelled.get("ref_runtime_us"),
            "modelled_bound": modelled.get("bound"), "timings": dict(result.timings)}


class Pace:
    """Whether one more evaluation fits before the check's cap, judged by the slowest so far: a
    check stops on its own with what it has instead of being cut in the middle of one."""

    def __init__(self, ctx, margin: float = 1.5):
        self.ctx, self.margin, self.longest = ctx, margin, 0.0

    def fits(self) -> bool:
        return self.ctx.left() > self.margin * self.longest

    def timed(self, fn, *args, **kwargs):
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.longest = max(self.longest, time.monotonic() - t0)
