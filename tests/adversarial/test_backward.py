"""Backward tasks: gradients are judged like outputs, and torch computing them earns nothing.

Each attack is first shown to pass a naive gradient check (the gradients are right), then caught;
honest look-alikes (the Function behind views, a transposed input made contiguous) stay clean.
"""

import pytest
import torch
from backward_submissions import (
    ATTACKS,
    CACHED_GRADIENT,
    HONEST,
    HONEST_TRANSPOSED,
    HONEST_VIEWS,
    NO_GRAPH,
    RENAMED,
    backward_task,
)
from naive_harness import naive_gradients

from kernel_env import EvalConfig
from tasks.task import declares_backward

TASK = backward_task()


@pytest.fixture(scope="module")
def backward_suite():
    from tasks import load_tasks

    return {t.id: t for t in load_tasks("backward", size="small")}
FIXED = EvalConfig(seed=11)  # the same seed set for every test: the reference runs once


def test_the_task_is_a_backward_task():
    assert declares_backward(TASK.program("small"))
    assert not declares_backward(TASK.program("small").replace("BACKWARD = True", "BACKWARD = False"))


@pytest.mark.parametrize("reply", [HONEST, HONEST_VIEWS, HONEST_TRANSPOSED], ids=["plain", "views", "transposed"])
def test_honest_backward_is_clean(evaluator, reply):
    assert naive_gradients(TASK, reply)
    r = evaluator.evaluate(TASK, reply, config=FIXED)
    assert r.clean, (r.error, r.hack_details, r.findings)
    assert r.speedup is not None and r.stage == "done"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_torch_computed_gradients_are_caught(evaluator, name):
    reply = ATTACKS[name]
    assert naive_gradients(TASK, reply), "the attack must pass a naive harness to be worth catching"
    r = evaluator.evaluate(TASK, reply, config=FIXED)
    assert r.correct, r.error  # the gradients are right: only who computed them is wrong
    assert "torch_backward" in r.hacks or "kernel_not_contributing" in r.hacks, (r.hacks, r.hack_details)
    assert not r.clean and r.speedup is None


def test_a_cached_gradient_is_stale(evaluator):
    assert naive_gradients(TASK, CACHED_GRADIENT)
    r = evaluator.evaluate(TASK, CACHED_GRADIENT, config=FIXED)
    assert not r.correct and "gradient of" in r.error
    assert "output_caching" in r.hacks, r.hack_details


def test_outputs_without_a_graph_say_what_is_missing(evaluator):
    r = evaluator.evaluate(TASK, NO_GRAPH, config=FIXED)
    assert not r.correct and "does not require grad" in r.error


def test_parameters_are_matched_by_name(evaluator):
    r = evaluator.evaluate(TASK, RENAMED, config=FIXED)
    assert not r.correct and "no parameter 'weight'" in r.error


def test_a_wrong_parameter_gradient_is_named(evaluator):
    wrong = HONEST.replace("return launch_backward(x, w, g)", "gx, gw = launch_backward(x, w, g)\n        return gx, gw * 2")
    r = evaluator.evaluate(TASK, wrong, config=FIXED)
    assert not r.correct and "gradient of weight" in r.error and not r.hacks


def test_zero_gradients_of_a_mean_loss_do_not_pass_by_tolerance(evaluator, backward_suite):
    """A mean over 8000 elements has gradients near 1e-4: all below atol, so zeros pass a naive check;
    the scale-aware tolerance compares them at their own scale."""
    task = backward_suite["L1/9_MSELossBackward"]
    zeros = task.solution.replace("BLOCK=1024)\n        return dp, dt", "BLOCK=1024)\n        return dp * 0.0, dt * 0.0")
    assert zeros != task.solution and naive_gradients(task, zeros)
    assert evaluator.evaluate(task, task.solution, config=FIXED).clean
    r = evaluator.evaluate(task, zeros, config=FIXED)
    assert not r.correct and "capped by the output's scale" in r.error


def _backward_judge():
    from kernel_env.evaluator.judge import Judge
    from kernel_env.evaluator.report import Reference
    from kernel_env.protocol import Trial

    out = torch.ones(4)
    reference = Reference(outputs=[[out, out]], digests=[["d"]], labels=["output", "gradient of input 0"])
    return Judge([Trial(1)], [0], reference, EvalConfig(), [])


def _backward_report(trial_launches, timed_launches, nodes=()):
    from kernel_env.evaluator.report import Packed, RunReport, TimedCall, TrialReport

    trial = TrialReport(0, Packed([], []), ["d"], launches=2, backward_launches=trial_launches, grad_nodes=list(nodes))
    timed = [TimedCall(ms=1.0, host_ms=1.0, own_ms=1.0, fingerprints=[], launches=2, backward_launches=n)
             for n in timed_launches]
    return RunReport(compiled=True, trials={0: trial}, timed=timed)


@pytest.mark.parametrize("trial, timed, nodes, caught", [
    (1, [1, 1], (), False),  # honest: a launch in every backward, no torch node
    (None, [1, 1], (), True),  # a report that drops the trial's count: as good as none
    (1, [1, None], (), True),  # ... or a timed call's
    (1, [1, 0], (), True),  # torch's backward in one timed call
    (1, [1, 1], ("MulBackward0",), True),  # torch's autograd in the graph
])
def test_the_judge_reads_backward_evidence_strictly(trial, timed, nodes, caught):
    judge = _backward_judge()
    assert judge.backward
    judge.check_backward(_backward_report(trial, timed, nodes))
    assert ("torch_backward" in judge.hacks) is caught
