"""The modelled GPU time, now that the reward uses it on the interpreter: pairs whose GPU order is not
in doubt rank that way end to end, and work hidden where extrapolation could miss it is priced."""

import pytest
from harness_aware_submissions import COPY
from helpers import relu_model, reply

from kernel_env import EvalConfig

RELU = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl

{kernel}

class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        {launch}
        return out
'''

ONE_BLOCK = '''@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)'''

#: One program loops over everything (work concentrated in program 0), or only the last of many does.
LOOPING = '''@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, WORKER: tl.constexpr):
    if tl.program_id(0) == WORKER:
        for start in range(0, n, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n
            tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)'''

#: The reference itself, then a copy through our kernel.
COPY_AFTER_TORCH = relu_model("return copy(torch.relu(x))", prelude=COPY)

#: No tiling, no tl.dot: one program per output row, a scalar of A times a row of B per step, so
#: every program re-reads all of B.
NAIVE_MATMUL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def row_kernel(a_ptr, b_ptr, c_ptr, N, BLOCK: tl.constexpr):
    i = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for k in range(0, N):
        acc += tl.load(a_ptr + i * N + k) * tl.load(b_ptr + k * N + cols, mask=mask, other=0.0)
    tl.store(c_ptr + i * N + cols, acc, mask=mask)


class ModelNew(nn.Module):
    def forward(self, A, B):
        N = A.shape[0]
        C = torch.empty((N, N), dtype=A.dtype, device=A.device)
        row_kernel[(N,)](A.contiguous(), B.contiguous(), C, N, BLOCK=triton.next_power_of_2(N))
        return C
'''

SUBMISSIONS = {
    "relu-good-blocks": ("relu", reply(RELU.format(kernel=ONE_BLOCK, launch=(
        "relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)")))),
    "relu-tiny-blocks": ("relu", reply(RELU.format(kernel=ONE_BLOCK, launch=(
        "relu_kernel[(triton.cdiv(n, 16),)](x, out, n, BLOCK=16)")))),
    "relu-all-in-program-0": ("relu", reply(RELU.format(kernel=LOOPING, launch=(
        "relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024, WORKER=0)")))),
    "relu-all-in-the-last-program": ("relu", reply(RELU.format(kernel=LOOPING, launch=(
        "relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024, WORKER=triton.cdiv(n, 1024) - 1)")))),
    "reference-through-a-copy-kernel": ("relu", COPY_AFTER_TORCH),
}
#: The interpreter runs the naive matmul's loop one block operation at a time (seconds per call): it
#: is judged on the fewest calls that still check it, with room for a slow machine. The model does not
#: depend on how many calls checked the code.
LEAN = EvalConfig(trials=1, extra_trials=0, warmup=0, iters=1, timeout_s=400)


@pytest.fixture(scope="module")
def speedups(evaluator, tasks):
    names = list(SUBMISSIONS)
    results = evaluator.map([(tasks[SUBMISSIONS[n][0]], SUBMISSIONS[n][1]) for n in names])
    results += evaluator.map([(tasks["matmul"], reply(NAIVE_MATMUL)), (tasks["matmul"], tasks["matmul"].solution)],
                             config=LEAN)
    names += ["matmul-naive-row-loop", "matmul-tiled-dot"]
    for name, r in zip(names, results):
        assert r.clean and r.modelled, (name, r.hacks, r.error, r.findings)
    return {name: r.modelled["speedup"] for name, r in zip(names, results)}


def test_an_honest_memory_bound_kernel_models_at_parity(speedups):
    assert 0.7 < speedups["relu-good-blocks"] <= 1.3


@pytest.mark.parametrize("slow, fast", [
    ("relu-tiny-blocks", "relu-good-blocks"),
    ("relu-all-in-program-0", "relu-good-blocks"),
    ("relu-all-in-the-last-program", "relu-good-blocks"),
    ("reference-through-a-copy-kernel", "relu-good-blocks"),
    ("matmul-naive-row-loop", "matmul-tiled-dot"),
])
def test_the_gpu_order_holds(speedups, slow, fast):
    assert speedups[slow] < 0.75 * speedups[fast], (speedups[slow], speedups[fast])


def test_hidden_serial_work_is_not_extrapolated_away(speedups):
    """One program doing all the work is far slower on a GPU than a full grid, wherever it sits."""
    assert speedups["relu-all-in-program-0"] < 0.2 and speedups["relu-all-in-the-last-program"] < 0.2


def test_the_reference_through_a_copy_is_below_parity(speedups):
    assert speedups["reference-through-a-copy-kernel"] < 1.0
