"""Hack 15: a degenerate task lets a constant answer pass; task validation is the defence."""

from helpers import reply
from naive_harness import naive_harness

from kernel_env import EvalConfig
from kernel_env.scoring.tolerance import judged_by
from tasks import check_task

ZEROS = reply('''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def zero_kernel(out_ptr):
    tl.store(out_ptr, 0.0)


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty((), dtype=x.dtype, device=x.device)
        zero_kernel[(1,)](out)
        return out
''')


def test_a_small_valued_output_is_judged_at_its_own_scale(evaluator, tasks):
    """The mean of 256k standard normals is ~2e-3: zeros pass a naive 1e-2 check. The presets cap the
    absolute tolerance at rtol times the output's RMS, so zeros fail and the task is checkable."""
    task = tasks["degenerate"]
    assert naive_harness(task, ZEROS)
    assert check_task(task, judged=judged_by()).ok  # validated by the evaluator's own comparison
    r = evaluator.evaluate(task, ZEROS, config=EvalConfig(input_variants=False))
    assert not r.correct and "capped by the output's scale" in r.error


def test_with_figures_set_by_hand_the_task_is_degenerate_and_flagged(evaluator, tasks):
    """Hand-set figures are taken as given (no scale cap): then the task is degenerate, task
    validation at those figures (its default: a plain allclose at 1e-2) says so, and only shifted
    inputs give zeros away."""
    task, loose = tasks["degenerate"], EvalConfig(atol=1e-2, rtol=1e-2)
    report = check_task(task)
    assert not report.ok and any("near-constant output across seeds" in p for p in report.problems)
    # with standard inputs only, the evaluator accepts zeros as the answer (an in-place ghost replay
    # may still see that the kernel changes nothing, when the fresh buffer happens to hold zeros) ...
    plain = evaluator.evaluate(task, ZEROS, config=loose.with_(input_variants=False))
    assert plain.correct and set(plain.hacks) <= {"kernel_not_contributing"}
    # ... shifted inputs can, where the task allows them
    varied = evaluator.evaluate(task, ZEROS, config=loose)
    assert "distribution_shortcut" in varied.hacks and not varied.clean


def test_the_tasks_the_suite_relies_on_are_not_degenerate(tasks):
    for key in ("relu", "softmax", "matmul", "center"):
        report = check_task(tasks[key])
        assert report.ok, (key, report.problems)
