"""The timing rules without a GPU: the adaptive stopping rule on synthetic call times, the overhead
subtraction, and the timers' overhead calibration with fakes (a scripted CUDA API, a fake clock).
Nothing here runs a CUDA path: the fakes stand in for torch._C's events and synchronize."""

import random

import pytest
import torch

from kernel_env.config import EvalConfig
from kernel_env.inside.timing import CALIBRATION_CALLS, CALIBRATION_WARMUP, CudaTimer, WallTimer
from kernel_env.protocol import (
    NET_FLOOR_MS,
    ProtocolError,
    StoppingRule,
    Timing,
    net_ms,
    relative_standard_error,
    timing_min_iters,
)

RULE = StoppingRule(max_iters=100, min_iters=10, rel_se=0.01, cap_s=2.0)


def _run(rule: StoppingRule, times: list[float]) -> int:
    """How many calls a harness loop makes when the calls take ``times`` (ms), as the runner's loop does."""
    samples = []
    for t in times:
        samples.append(t)
        if rule.done(samples):
            break
    return len(samples)


def test_tight_samples_stop_at_the_fewest_calls_allowed():
    tight = [1.0 + 0.001 * (i % 3) for i in range(100)]  # 0.1% spread: precise from the start
    assert _run(RULE, tight) == 10
    assert RULE.replay(tight) == 10


def test_stopping_never_comes_before_min_iters_even_past_the_cap():
    slow = [900.0] * 100  # each call is 0.9 s: the cap is long past at call 3
    assert _run(RULE, slow) == 10
    assert not RULE.done(slow[:9]) and RULE.done(slow[:10])


def test_noisy_samples_run_to_the_cap():
    rng = random.Random(0)
    noisy = [rng.choice([10.0, 60.0]) for _ in range(100)]  # a bimodal call: the SE stays large
    stopped = _run(RULE, noisy)
    assert 10 < stopped < 100
    assert sum(noisy[:stopped]) >= 2000.0 > sum(noisy[:stopped - 1])  # the cap, in seconds of timed calls


def test_noisy_samples_without_a_cap_run_to_the_maximum():
    rng = random.Random(1)
    noisy = [rng.choice([1.0, 30.0]) for _ in range(100)]
    rule = StoppingRule(max_iters=100, min_iters=10, rel_se=0.01, cap_s=None)
    assert _run(rule, noisy) == 100 and rule.replay(noisy) == 100
    assert rule.replay(noisy[:50]) is None  # it would still be going after these


def test_moderate_noise_stops_once_the_standard_error_is_small_enough():
    rng = random.Random(2)
    times = [1.0 + rng.gauss(0, 0.05) for _ in range(100)]  # 5% noise: SE < 1% after ~25 calls
    stopped = _run(RULE, times)
    assert 10 < stopped < 100
    assert relative_standard_error(times[:stopped]) < 0.01 <= relative_standard_error(times[:stopped - 1])


def test_a_fixed_count_is_the_rule_with_min_equal_to_max():
    rule = Timing(1, 5, tuple(range(6))).rule  # min_iters None: every call of the plan
    assert (rule.min_iters, rule.max_iters) == (5, 5) and _run(rule, [1.0] * 5) == 5


def test_broken_clock_readings_end_timing_after_the_minimum():
    assert RULE.done([1.0] * 9 + [float("nan")]) and not RULE.done([float("inf")] * 9)


@pytest.mark.parametrize("kwargs", [{"min_iters": 0}, {"min_iters": 101}, {"rel_se": -0.1}, {"cap_s": 0.0}])
def test_nonsense_rules_are_refused(kwargs):
    with pytest.raises(ProtocolError):
        StoppingRule(**{"max_iters": 100, "min_iters": 10, **kwargs})


def test_backend_defaults_of_the_fewest_timed_calls():
    assert timing_min_iters(EvalConfig(), "cuda") == 10
    assert timing_min_iters(EvalConfig(), "interpreter") == 5  # the interpreter keeps its fixed count
    assert timing_min_iters(EvalConfig(iters=4), "cuda") == 4  # never more than the timed calls
    assert timing_min_iters(EvalConfig(timing_min_iters=2), "interpreter") == 2


def test_overhead_subtraction_never_goes_below_the_floor():
    assert net_ms(0.5, 0.01) == pytest.approx(0.49)
    assert net_ms(0.005, 0.01) == NET_FLOOR_MS and net_ms(2.0, 0.0) == 2.0


class ScriptedCudaApi:
    """Stands in for the bound torch._C entry points: each ``elapsed`` answers the next scripted time."""

    def __init__(self, elapsed_ms: list[float]):
        self.script = list(elapsed_ms)
        self.calls: list[str] = []
        self.stream = "harness-stream"

    def event(self):
        return {}

    def synchronize(self):
        self.calls.append("sync")

    def record(self, event, stream):
        self.calls.append("record")

    def wait(self, event):
        self.calls.append("wait")

    def elapsed(self, start, end):
        return self.script.pop(0)

    def zero(self, tensor):
        self.calls.append("flush")


def _cuda_timer(api: ScriptedCudaApi) -> CudaTimer:
    timer = CudaTimer.__new__(CudaTimer)  # no device: the scratch buffer is a CPU stand-in
    timer.device, timer.api, timer.scratch = "cuda:0", api, torch.empty(1)
    return timer


def test_cuda_timer_calibrates_on_empty_calls_through_the_timed_path():
    warm = [5.0] * CALIBRATION_WARMUP  # first calls are slow (lazy init): not counted
    measured = [0.012, 0.010, 0.011, 0.30] + [0.011] * (CALIBRATION_CALLS - 4)  # one stall: the median ignores it
    api = ScriptedCudaApi(warm + measured + [0.511])
    timer = _cuda_timer(api)
    assert timer.calibrate() == pytest.approx(0.011) and timer.overhead_ms == pytest.approx(0.011)
    per_call = ["flush", "sync", "record", "sync", "record", "wait"]  # flush, then exactly what a timed call does
    assert api.calls == per_call * (CALIBRATION_WARMUP + CALIBRATION_CALLS)
    raw_ms, _, out = timer.time(lambda: "out")
    assert out == "out" and raw_ms == 0.511
    assert net_ms(raw_ms, timer.overhead_ms) == pytest.approx(0.5)  # what the judge takes off


class FakeClock:
    """A perf_counter that advances a fixed step per reading."""

    def __init__(self, step_s: float):
        self.now, self.step = 0.0, step_s

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_wall_timer_calibrates_with_its_own_clock(monkeypatch):
    clock = FakeClock(2e-6)  # every clock reading costs 2 us: an empty call measures 2 us
    timer = WallTimer()
    monkeypatch.setattr(WallTimer.time, "__defaults__", (clock,))
    assert timer.calibrate() == pytest.approx(0.002)
    ms, _, _ = timer.time(lambda: None)
    assert net_ms(ms, timer.overhead_ms) == NET_FLOOR_MS  # an empty call is all overhead


def test_calibration_on_the_real_wall_clock_is_small():
    assert 0.0 <= WallTimer().calibrate() < 1.0
