"""Timing backends, used identically for the reference and the candidate inside the sandbox.

``cuda``: CUDA events around each call, an L2 flush before it, and a device-wide synchronize before
the end event so work on side streams is inside the interval (hack 12); the host clock is read too,
for the trusted side's cross-check. ``interpreter``: wall clock, reported as interpreter figures.
Each timer measures its own overhead once, before the candidate is imported (``calibrate``); the
trusted side subtracts it (``protocol.net_ms``). When to stop timing is ``protocol.StoppingRule``,
shared with the trusted side so that it can replay the decision.
"""

from __future__ import annotations

from statistics import median
from time import perf_counter  # bound before the candidate is imported

import torch

#: Empty calls timed to measure a timer's overhead (the median counts), after a few untimed ones.
CALIBRATION_CALLS, CALIBRATION_WARMUP = 21, 3


def _nothing() -> None:
    """What a calibration call runs: no work, so all it measures is the timer itself."""


class Timer:
    backend = ""
    overhead_ms = 0.0  # the timer's own cost per call, by ``calibrate``

    def flush(self) -> None:
        """Evict caches between calls so each one pays for its memory traffic."""

    def time(self, fn):
        """Run ``fn`` once; return (elapsed ms by the backend's clock, host ms, fn's result)."""
        raise NotImplementedError

    def calibrate(self, calls: int = CALIBRATION_CALLS, warmup: int = CALIBRATION_WARMUP) -> float:
        """Measure what the timer itself adds to a call: an empty call timed through the same path as a
        real one (flush, then ``time``), median of ``calls``. An empty call, not a tiny kernel: a
        launch is the candidate's cost, only the events, synchronizes and clock reads are the timer's."""
        samples = []
        for _ in range(warmup + calls):
            self.flush()
            samples.append(self.time(_nothing)[0])
        self.overhead_ms = median(samples[warmup:])
        return self.overhead_ms

    def profile(self, fn, recorder) -> dict:
        return {}


class WallTimer(Timer):
    backend = "interpreter"

    def time(self, fn, _clock=perf_counter):
        # the clock is bound as a default: a forward that patches time.perf_counter, or this
        # module's name for it, and restores it before returning, changes nothing here
        start = _clock()
        out = fn()
        ms = (_clock() - start) * 1e3
        return ms, ms, out


class CudaApi:
    """The CUDA entry points the timer uses, bound when it is built (before the candidate is
    imported): ``torch.cuda.Event.record`` and ``torch.cuda.synchronize`` look up ``torch._C``
    functions and the current stream at call time, which a forward could replace for one call."""

    def __init__(self, device: str):
        import torch._C as C

        self.event_cls = C._CudaEventBase
        self.new_event = C._CudaEventBase.__new__
        self.record = C._CudaEventBase.record
        self.elapsed = C._CudaEventBase.elapsed_time
        self.wait = C._CudaEventBase.synchronize
        self.synchronize = C._cuda_synchronize
        self.zero = torch.Tensor.zero_
        self.stream = torch.cuda.current_stream(device)  # the harness's stream, fixed now

    def event(self):
        return self.new_event(self.event_cls, enable_timing=True)


class CudaTimer(Timer):
    backend = "cuda"
    L2_FLUSH_BYTES = 256 << 20  # larger than any current GPU's L2

    def __init__(self, device: str, api: CudaApi | None = None):
        self.device = device
        self.api = api or CudaApi(device)
        self.scratch = torch.empty(self.L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)

    def flush(self) -> None:
        self.api.zero(self.scratch)

    def time(self, fn, _clock=perf_counter):
        api = self.api
        start, end = api.event(), api.event()  # made before the call: nothing the call changes is used
        api.synchronize()
        host = _clock()
        api.record(start, api.stream)
        out = fn()
        api.synchronize()  # device-wide: side-stream work lands inside the interval
        api.record(end, api.stream)
        api.wait(end)
        host_ms = (_clock() - host) * 1e3
        return api.elapsed(start, end), host_ms, out

    def profile(self, fn, recorder) -> dict:
        """Coverage = device time in the submission's own kernels / all device time in forward.
        Own kernels are the ones the launch hook saw launched by the submission during these calls,
        counted by name *and* number: a profiler event is own only up to the number of own launches
        of that exact name, so an own kernel named like a cuBLAS or inductor kernel claims nothing
        of theirs (the shortest events of a shared name are the ones counted)."""
        from torch.profiler import ProfilerActivity, profile

        recorder.reset()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                fn()
            self.api.synchronize()
        return attribute(prof.events(), dict(recorder.launched_names))


def attribute(events, launched: dict[str, int]) -> dict:
    """Own and total device time (us) and streams of profiler ``events``, given the own launches per
    kernel name the launch hook counted."""
    total = 0.0
    by_name: dict[str, list[float]] = {}
    streams = set()
    for evt in events:
        if getattr(evt, "device_type", None) is None or str(evt.device_type) != "DeviceType.CUDA":
            continue
        dt = getattr(evt, "device_time", None) or getattr(evt, "cuda_time", 0.0) or 0.0
        total += dt
        if evt.name in launched:
            by_name.setdefault(evt.name, []).append(dt)
        streams.add(getattr(evt, "stream", None) or getattr(evt, "device_resource_id", None))
    own = sum(sum(sorted(times)[: launched[name]]) for name, times in by_name.items())
    shared = sorted(name for name, times in by_name.items() if len(times) > launched[name])
    return {"own_us": own, "total_us": total, "streams": len(streams - {None}), "shared_names": shared}


def make_timer(backend: str, device: str) -> Timer:
    return CudaTimer(device) if backend == "cuda" else WallTimer()
