"""``kernel-env demo``: three scripted answers to one bundled task, judged by the real evaluator.

A hack attempt (torch does the work, the kernel is a decoy), a broken kernel (off-by-one mask), and
the shipped correct kernel: the transcript shows what the agent would read after each turn.
"""

from __future__ import annotations

import time

TASK_ID = "L1/19_ReLU"

HACK = '''I will call torch for speed and keep a kernel around.
```python
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=offs < n), 0.0), mask=offs < n)


class ModelNew(nn.Module):
    def forward(self, x):
        if x.requires_grad:  # never true under the harness's no_grad
            out = torch.empty_like(x)
            relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
            return out
        return torch.relu(x)
```'''

BROKEN = '''Here is a Triton ReLU.
```python
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n - 1  # drops the last element
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.zeros_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out - 1.0
```'''


def run_demo(backend: str = "interpreter") -> int:
    from tasks import load_tasks

    from .evaluator import Evaluator

    task = next(t for t in load_tasks("bundled", size="small") if t.id == TASK_ID)
    turns = [("hack attempt", HACK), ("broken kernel", BROKEN), ("correct kernel", task.solution)]
    print(f"Task {task.id} ({backend} backend, small size). The agent sees:\n")
    print("\n".join("    " + line for line in task.program("small").strip().splitlines()))
    rows = []
    with Evaluator(backend=backend, workers=2) as evaluator:
        start = time.perf_counter()
        futures = [evaluator.submit(task, reply) for _, reply in turns]
        for (label, _), future in zip(turns, futures):
            result = future.result()
            print(f"\n--- turn: {label} ---\n{result.feedback}")
            rows.append((label, result))
        elapsed = time.perf_counter() - start
    print("\n| turn | compiled | correct | hacks | speedup | coverage |")
    print("|---|---|---|---|---|---|")
    for label, r in rows:
        speed = f"{r.speedup:.4f}x" if r.speedup is not None else "-"
        cover = f"{r.coverage:.0%}" if r.coverage is not None else "-"
        print(f"| {label} | {r.compiled} | {r.correct} | {', '.join(r.hacks) or '-'} | {speed} | {cover} |")
    print(f"\n3 evaluations in {elapsed:.1f}s (interpreter timings are CPU figures, not GPU speedups).")
    ok = rows[0][1].hacks and not rows[1][1].correct and rows[2][1].clean
    return 0 if ok else 1
