"""``kernel-env demo``: one real ``KernelEnv`` episode on a bundled task, played by a scripted policy.

Turn 1 is a hack attempt (torch does the work, the kernel is a decoy), turn 2 a broken kernel
(off-by-one mask), turn 3 the shipped correct kernel. The transcript is exactly what an LLM would read;
the table shows each turn's verdict and what every reward preset would pay for it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

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

PRESET_COLUMNS = ("drkernel", "correctness", "speedup", "log_speedup")


def scripted_replies(task) -> list[tuple[str, str]]:
    return [("hack attempt", HACK), ("broken kernel", BROKEN), ("correct kernel", task.solution)]


def reward_table(labels: list[str], results, rewards: list[float]) -> str:
    """One row per turn: the verdict, the env's reward, and what each preset would have paid."""
    from .scoring.rewards import RewardConfig, chosen_speedup, speed_source

    presets = {name: RewardConfig(preset=name) for name in PRESET_COLUMNS}
    head = ["turn", "reply", "compiled", "correct", "hacks", "speedup", "coverage", "env reward",
            *[f"{n}" for n in PRESET_COLUMNS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (label, r, reward) in enumerate(zip(labels, results, rewards), 1):
        paid = chosen_speedup(r) if r.clean else None  # the figure the presets pay (modelled on the CPU)
        speed = f"{paid:.2f}x ({speed_source(r)})" if paid is not None else "-"
        cover = f"{r.coverage:.0%}" if r.coverage is not None else "-"
        cells = [str(i), label, str(r.compiled), str(r.correct), ", ".join(r.hacks) or "-", speed, cover,
                 f"{reward:.3f}", *[f"{presets[n](r):.3f}" for n in PRESET_COLUMNS]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(backend: str = "interpreter", evaluator=None, out: TextIO | None = None) -> int:
    """Play the scripted episode and print it; exit status 0 when every verdict is the expected one."""
    from .envs.text_env import KernelEnv
    from .evaluator import Evaluator

    out = out or sys.stdout
    own = evaluator is None
    evaluator = evaluator or Evaluator(backend=backend, workers=1)
    env = KernelEnv(tasks="bundled", levels=(1,), evaluator=evaluator, max_turns=3, render_mode="ansi")
    try:
        obs, info = env.reset(seed=0, options={"task_id": TASK_ID})
        replies = scripted_replies(env.task)
        print(f"kernel-env demo: one episode of {info['task_id']} ({env.backend} backend, {env.size} size, "
              f"{env.max_turns} turns, reward {env.reward_config.name!r}).\n", file=out)
        print(f"--- user ---\n{obs}\n", file=out, flush=True)
        start = time.perf_counter()
        labels, truncated = [], False
        for label, reply in replies:
            obs, reward, terminated, truncated, info = env.step(reply)
            labels.append(label)
            print(f"--- assistant ({label}) ---\n{reply.strip()}\n", file=out)
            print(f"--- user (reward {reward:.3f}) ---\n{obs}\n", file=out, flush=True)
            if terminated or truncated:
                break
        elapsed = time.perf_counter() - start
        print(reward_table(labels, env.results, env.rewards), file=out)
        print(f"\nreturn {sum(env.rewards):.3f}, best speedup {info['best_speedup']:.4f}x, "
              f"{len(labels)} evaluations in {elapsed:.1f}s", file=out)
        if env.backend == "interpreter":
            print("(speedup: the modelled GPU figure the reward pays; interpreter timings are CPU figures)", file=out)
        if len(env.results) != 3:
            return 1
        hack, broken, honest = env.results
        return 0 if hack.hacks and not broken.correct and honest.clean and truncated else 1
    finally:
        env.close()
        if own:
            evaluator.close()
