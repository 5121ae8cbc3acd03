"""Precision variants: the task, the reference and the candidate at bf16 or fp16, judged by the
preset's figures for that dtype, with the interpreter's bfloat16 limit named where it bites."""

import pytest

from kernel_env import EvalConfig, KernelEnv

#: ReLU that computes in float32 whatever the storage type (what the interpreter needs for bf16).
WIDENING_RELU = '''```python
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(out_ptr + offs, tl.maximum(x, 0.0).to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out
```'''


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_a_kernel_that_widens_is_correct_at_half_precision(evaluator, bundled, dtype):
    r = evaluator.evaluate(bundled["L1/19_ReLU"], WIDENING_RELU, config=EvalConfig(dtype=dtype))
    assert r.clean, (r.error, r.hacks)
    assert r.dtype == dtype and r.tolerance == {"atol": 1e-2, "rtol": 1e-2, "preset": "drkernel", "dtype": dtype,
                                                "scale_aware": True}


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_the_shipped_answer_runs_at_half_precision(evaluator, bundled, dtype):
    task = bundled["L1/19_ReLU"]
    assert evaluator.evaluate(task, task.solution, config=EvalConfig(dtype=dtype)).clean


def test_the_interpreters_bf16_limit_is_named_in_the_feedback(evaluator, bundled):
    direct = WIDENING_RELU.replace(".to(tl.float32)", "")  # computes on the loaded values directly
    r = evaluator.evaluate(bundled["L1/19_ReLU"], direct, config=EvalConfig(dtype="bf16"))
    assert not r.correct and not r.hacks
    assert "raw 16-bit integers" in r.feedback and ".to(tl.float32)" in r.feedback


def test_a_float32_answer_to_a_half_precision_task_is_wrong(evaluator, bundled):
    upcast = WIDENING_RELU.replace("out = torch.empty_like(x)", "out = torch.empty_like(x, dtype=torch.float32)")
    r = evaluator.evaluate(bundled["L1/19_ReLU"], upcast, config=EvalConfig(dtype="fp16"))
    assert not r.correct and "dtype torch.float32, expected torch.float16" in r.error


def test_the_env_states_the_precision_and_the_tolerance(evaluator):
    env = KernelEnv(levels=(1,), evaluator=evaluator, dtype="bf16", tolerance="kernelbench")
    prompt, _ = env.reset(seed=0, options={"task_id": "L1/19_ReLU"})
    assert env.config.dtype == "bf16" and env.config.tolerance == "kernelbench"
    assert "cast" in prompt and "bfloat16" in prompt and "tolerance preset kernelbench" in prompt
    assert "raw 16-bit integers" in prompt  # the interpreter's limit, up front
    env.close()
