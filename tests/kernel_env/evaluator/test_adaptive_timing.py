"""Timing a reviewer can trust, on the trusted side: the judge replays the stopping rule on the times
a run reported, matches every timed call against a reference fingerprint whatever the two counts,
takes the timer's overhead off (never more than the reference run measured), and reports raw and net
medians with their spread in ``EvalResult.timings``. Then the same end to end on the interpreter."""

import shutil

import pytest
import torch
from helpers import relu_model, tagged

from kernel_env.config import EvalConfig
from kernel_env.evaluator.judge import Judge, spread
from kernel_env.evaluator.plan import SeedSet, timing_plan
from kernel_env.evaluator.report import Reference, RunReport, TimedCall
from kernel_env.protocol import StoppingRule, Trial
from kernel_env.wire import fingerprint

OUT = torch.arange(8, dtype=torch.float32)
PRINT = fingerprint(OUT, 5)
RULE = StoppingRule(max_iters=10, min_iters=3, rel_se=0.01, cap_s=None)
TIGHT = [2.0, 2.0, 2.0]  # stops at min_iters
NOISY = [1.0, 3.0, 1.0, 3.0, 1.0]  # still noisy after five calls


def _judge(ref_ms=(1.0,) * 10, prints=10, overhead_ms=0.0, rule=RULE) -> Judge:
    reference = Reference(outputs=[[OUT]], digests=[["d"]], times_ms=list(ref_ms), timed_prints=[[PRINT]] * prints,
                          timed_numel=[[8]] * prints, tick_gaps_ms=[1.0] * len(ref_ms), overhead_ms=overhead_ms,
                          rule=rule)
    return Judge([Trial(1)], [0], reference, EvalConfig(), [])


def _report(ms, overhead_ms=0.0) -> RunReport:
    calls = [TimedCall(ms=m, host_ms=m, own_ms=m, fingerprints=[PRINT], launches=1, external_ms=m + 1.0, numel=[8])
             for m in ms]
    return RunReport(compiled=True, timed=calls, timing_window=(0.0, 10.0), timer_overhead_ms=overhead_ms)


def test_a_candidate_may_stop_before_the_reference_did():
    judge = _judge(ref_ms=[1.0, 1.1] * 5)  # the reference ran all ten
    speed = judge.check_timing(_report(TIGHT))
    assert not judge.hacks and speed.detail["timed_calls"] == 3 and speed.ref_detail["ref_timed_calls"] == 10


def test_a_candidate_may_time_more_calls_than_the_reference_timed():
    judge = _judge(ref_ms=TIGHT)  # timed three, fingerprinted all ten seeds
    speed = judge.check_timing(_report(NOISY + [2.0] * 5))
    assert not judge.hacks and speed.detail["timed_calls"] == 10


def test_stopping_earlier_or_later_than_the_rule_is_tampering():
    judge = _judge()
    judge.check_timing(_report(NOISY[:4]))  # the rule says go on: four noisy calls dodge the rest
    assert "would go on" in judge.hacks["timer_tampering"]
    judge = _judge()
    judge.check_timing(_report(TIGHT + [2.0]))  # the rule stopped at three
    assert "stops after 3" in judge.hacks["timer_tampering"]


def test_calls_beyond_the_reference_fingerprints_are_mismatches():
    judge = _judge(prints=3, rule=None)
    judge.check_timing(_report([2.0] * 4))
    assert "timed call 0" in judge.hacks["timed_output_mismatch"]


def test_the_overhead_taken_off_never_exceeds_the_reference_runs():
    judge = _judge(ref_ms=[1.0] * 10, overhead_ms=0.2, rule=None)
    speed = judge.check_timing(_report([0.7] * 10, overhead_ms=0.6))  # a forged, inflated calibration
    assert speed.detail["timer_overhead_ms"] == 0.2 and speed.runtime_ms == pytest.approx(0.5)
    assert speed.ref_runtime_ms == pytest.approx(0.8) and speed.speedup == pytest.approx(1.6)
    assert speed.detail["runtime_raw_ms"] == 0.7 and speed.detail["speedup_raw"] == pytest.approx(1.0 / 0.7, rel=1e-5)
    smaller = _judge(overhead_ms=0.2, rule=None).check_timing(_report([0.7] * 10, overhead_ms=0.1))
    assert smaller.detail["timer_overhead_ms"] == 0.1 and smaller.runtime_ms == pytest.approx(0.6)


def test_spread_figures():
    got = spread([1.0, 2.0, 3.0, 4.0, 100.0], 0.5)
    assert got["runtime_raw_ms"] == 3.0 and got["runtime_mad_ms"] == 1.0 and got["runtime_iqr_ms"] == 2.0
    assert got["timer_overhead_ms"] == 0.5 and got["timed_calls"] == 5 and got["runtime_cv"] > 1.0
    assert got["runtime_rel_se"] == pytest.approx(got["runtime_cv"] * 22.0 / 5 ** 0.5 / 3.0, rel=1e-4)
    assert spread([2.0], 0.0, prefix="ref_") == {"ref_timed_calls": 1, "ref_runtime_raw_ms": 2.0,
                                                 "ref_timer_overhead_ms": 0.0, "ref_runtime_mad_ms": 0.0,
                                                 "ref_runtime_iqr_ms": 0.0, "ref_runtime_cv": 0.0}
    assert spread([1.0, float("nan")], 0.0) == {}  # broken readings are tampering, not a spread


def test_the_plan_sends_every_seed_and_the_rule_of_the_config():
    config = EvalConfig(timing_min_iters=7, timing_rel_se=0.02, timing_cap_s=1.5, baseline="compile")
    plan = timing_plan(config, "cuda", SeedSet(1, 2))
    assert (plan.warmup, plan.iters, len(set(plan.seeds))) == (3, 100, 103)
    assert plan.rule == StoppingRule(100, 7, 0.02, 1.5) and plan.baseline == "compile"
    assert timing_plan(EvalConfig(), "interpreter", SeedSet(1, 2)).rule == StoppingRule(5, 5, 0.01, 2.0)


@pytest.mark.parametrize("changes", [{"baseline": "inductor"}, {"timing_rel_se": -0.01}, {"timing_cap_s": 0},
                                     {"timing_cap_s": float("inf")}, {"timing_min_iters": 0},
                                     {"timing_min_iters": 2.5}, {"timing_rel_se": True}])
def test_the_config_refuses_nonsense_timing_settings(changes):
    with pytest.raises(ValueError, match="EvalConfig"):
        EvalConfig(**changes)


# -- end to end, interpreter backend ----------------------------------------------------------

def test_an_evaluation_reports_raw_and_net_medians_and_their_spread(evaluator, relu):
    r = evaluator.evaluate(relu, tagged(relu.solution, "spread"))
    assert r.clean, (r.hacks, r.error)
    t = r.timings
    assert t["timed_calls"] == 5 and t["ref_timed_calls"] == 5  # the interpreter's fixed count
    for side in ("", "ref_"):
        assert t[f"{side}timer_overhead_ms"] >= 0 and t[f"{side}runtime_iqr_ms"] >= 0
        assert t[f"{side}runtime_mad_ms"] >= 0 and t[f"{side}runtime_cv"] >= 0 and t[f"{side}runtime_rel_se"] >= 0
    assert r.runtime_ms <= t["runtime_raw_ms"] and r.ref_runtime_ms <= t["ref_runtime_raw_ms"]
    assert t["speedup_raw"] > 0


def test_each_side_stops_by_the_rule_and_the_counts_may_differ(evaluator, relu):
    """A cap of 10 ms of timed calls: the interpreted candidate reaches it after a few calls, torch's
    ReLU on the CPU runs to the maximum; the judge replays both decisions and finds nothing wrong."""
    config = EvalConfig(iters=20, timing_min_iters=2, timing_rel_se=0.0, timing_cap_s=0.01)
    r = evaluator.evaluate(relu, tagged(relu.solution, "capped"), config=config)
    assert r.clean, (r.hacks, r.error)
    assert 2 <= r.timings["timed_calls"] < r.timings["ref_timed_calls"] == 20


def test_tight_timings_stop_early_and_stay_clean(evaluator, relu):
    config = EvalConfig(iters=12, timing_min_iters=3, timing_rel_se=10.0)
    r = evaluator.evaluate(relu, tagged(relu.solution, "early stop"), config=config)
    assert r.clean, (r.hacks, r.error)
    assert r.timings["timed_calls"] == 3 and r.timings["ref_timed_calls"] == 3


def test_a_forward_that_rewrites_the_stopping_rule_is_named(evaluator, relu):
    """The rule lives in a harness module: replacing it is seen (and undone) after the very call."""
    stop_at_once = relu_model("protocol.StoppingRule.done = lambda self, samples: True\nreturn relu(x)",
                              prelude="import kernel_env.protocol as protocol")
    r = evaluator.evaluate(relu, stop_at_once, config=EvalConfig(iters=12, timing_min_iters=3, timing_rel_se=0.0))
    assert "timer_tampering" in r.hacks and "StoppingRule" in r.hack_details["timer_tampering"]


@pytest.mark.slow  # torch.compile's first compile on the CPU takes about a minute on 2 cores
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on the CPU needs a C++ compiler (none on PATH)")
def test_the_compile_baseline_times_torch_compile_of_the_reference(evaluator, relu):
    config = EvalConfig(baseline="compile", timeout_s=300.0, cpu_time_s=600)
    r = evaluator.evaluate(relu, tagged(relu.solution, "compile baseline"), config=config)
    assert r.clean, (r.hacks, r.error)
    assert r.ref_runtime_ms > 0 and r.timings["ref_timed_calls"] == 5


@pytest.mark.gpu  # written for a GPU, never run on this project's CPU-only machines
def test_cuda_overhead_and_adaptive_stop_on_a_gpu(bundled):
    from kernel_env import Evaluator
    from kernel_env.inside.timing import CudaTimer

    assert 0 < CudaTimer("cuda:0").calibrate() < 0.1  # events and synchronizes: microseconds
    task = bundled["L1/19_ReLU"]
    with Evaluator(backend="cuda", workers=1) as ev:
        r = ev.evaluate(task, tagged(task.solution, "cuda timing"), size="full")
    assert r.clean, (r.hacks, r.error)
    assert 10 <= r.timings["timed_calls"] <= 100 and 10 <= r.timings["ref_timed_calls"] <= 100
    assert 0 < r.timings["timer_overhead_ms"] < 0.1 and r.runtime_ms < r.timings["runtime_raw_ms"]
