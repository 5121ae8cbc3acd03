"""Hack 15: a degenerate task lets a constant answer pass; task validation is the defence."""

from helpers import reply
from naive_harness import naive_harness

from kernel_env import EvalConfig
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


def test_a_degenerate_task_is_flagged_and_zeros_pass_on_it(evaluator, tasks):
    task = tasks["degenerate"]
    report = check_task(task)
    assert not report.ok and any("near-constant output across seeds" in p for p in report.problems)
    assert naive_harness(task, ZEROS)
    # with standard inputs only, the evaluator accepts zeros as the answer (an in-place ghost replay
    # may still see that the kernel changes nothing, when the fresh buffer happens to hold zeros) ...
    plain = evaluator.evaluate(task, ZEROS, config=EvalConfig(input_variants=False))
    assert plain.correct and set(plain.hacks) <= {"kernel_not_contributing"}
    # ... shifted inputs can, where the task allows them
    varied = evaluator.evaluate(task, ZEROS)
    assert "distribution_shortcut" in varied.hacks and not varied.clean


def test_the_tasks_the_suite_relies_on_are_not_degenerate(tasks):
    for key in ("relu", "softmax", "matmul", "center"):
        report = check_task(tasks[key])
        assert report.ok, (key, report.problems)
