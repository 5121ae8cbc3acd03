"""Timing backends, used identically for the reference and the candidate inside the sandbox.

``cuda``: CUDA events around each call, an L2 flush before it, and a device-wide synchronize before
the end event so work on side streams is inside the interval (hack 12); the host clock is read too,
for the trusted side's cross-check. ``interpreter``: wall clock, reported as interpreter figures.
"""

from __future__ import annotations

import time

import torch


class Timer:
    backend = ""

    def flush(self) -> None:
        """Evict caches between calls so each one pays for its memory traffic."""

    def time(self, fn):
        """Run ``fn`` once; return (elapsed ms by the backend's clock, host ms, fn's result)."""
        raise NotImplementedError

    def profile(self, fn, own_names: set[str]) -> dict:
        return {}


class WallTimer(Timer):
    backend = "interpreter"

    def time(self, fn):
        start = time.perf_counter()
        out = fn()
        ms = (time.perf_counter() - start) * 1e3
        return ms, ms, out


class CudaTimer(Timer):
    backend = "cuda"
    L2_FLUSH_BYTES = 256 << 20  # larger than any current GPU's L2

    def __init__(self, device: str):
        self.device = device
        self.scratch = torch.empty(self.L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)

    def flush(self) -> None:
        self.scratch.zero_()

    def time(self, fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        host = time.perf_counter()
        start.record()
        out = fn()
        torch.cuda.synchronize()  # device-wide: side-stream work lands inside the interval
        end.record()
        end.synchronize()
        host_ms = (time.perf_counter() - host) * 1e3
        return start.elapsed_time(end), host_ms, out

    def profile(self, fn, own_names: set[str]) -> dict:
        """Coverage = device time in the submission's own kernels / all device time in forward."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
        own = total = 0.0
        streams = set()
        for evt in prof.events():
            dt = getattr(evt, "device_time", None) or getattr(evt, "cuda_time", 0.0) or 0.0
            if getattr(evt, "device_type", None) is None or str(evt.device_type) != "DeviceType.CUDA":
                continue
            total += dt
            if any(evt.name == n or evt.name.startswith(n + "_") for n in own_names):
                own += dt
            streams.add(getattr(evt, "stream", None) or getattr(evt, "device_resource_id", None))
        return {"own_us": own, "total_us": total, "streams": len(streams - {None})}


def make_timer(backend: str, device: str) -> Timer:
    return CudaTimer(device) if backend == "cuda" else WallTimer()
