"""CUDA timing and coverage, with fakes for what the CPU lacks: the timer uses only entry points
bound before the candidate, and coverage counts own kernels by launch, never by a name prefix."""

import types

import torch

from kernel_env.inside.timing import CudaTimer, attribute


def _event(name, us, stream=7):
    return types.SimpleNamespace(name=name, device_time=us, device_type="DeviceType.CUDA", stream=stream)


def test_an_own_kernel_named_like_cublas_claims_only_its_own_launches():
    cublas = "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32"
    events = [_event(cublas, 900.0), _event(cublas, 5.0), _event("relu_kernel", 10.0)]
    got = attribute(events, {cublas: 1, "relu_kernel": 1})
    assert got["own_us"] == 15.0 and got["total_us"] == 915.0 and got["shared_names"] == [cublas]
    prefix = attribute([_event("relu_kernel_0d1d", 10.0), _event("relu_kernel", 1.0)], {"relu_kernel": 1})
    assert prefix["own_us"] == 1.0  # a prefix is not an identity


class FakeApi:
    """Records what the timer calls; elapsed time comes from the fake's own clock."""

    def __init__(self):
        self.calls, self.stream = [], "harness-stream"

    def event(self):
        return {"t": None}

    def synchronize(self):
        self.calls.append("sync")

    def record(self, event, stream):
        event["t"], event["stream"] = len(self.calls), stream
        self.calls.append("record")

    def wait(self, event):
        self.calls.append("wait")

    def elapsed(self, start, end):
        return float(end["t"] - start["t"])

    def zero(self, tensor):
        self.calls.append("flush")


def test_the_cuda_timer_uses_only_what_it_bound(monkeypatch):
    api = FakeApi()
    timer = CudaTimer.__new__(CudaTimer)
    timer.device, timer.api, timer.scratch = "cuda:0", api, torch.empty(1)

    def forward():  # a forward that replaces what torch.cuda's Python layer would call at call time
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: "side-stream")
        return "out"

    timer.flush()
    ms, host_ms, out = timer.time(forward)
    assert out == "out" and api.calls == ["flush", "sync", "record", "sync", "record", "wait"]
    assert ms == 2.0 and host_ms >= 0.0
