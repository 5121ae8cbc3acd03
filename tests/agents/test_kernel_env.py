"""End to end on the real kernel env (interpreter backend): the CLI run, and honest metrics.

Skipped with a reason if ``kernel_env`` cannot be imported.
"""

import json
import os
import subprocess
import sys

import pytest
from agents_helpers import ScriptedSampler

kernel_env = pytest.importorskip("kernel_env", reason="kernel_env (the Gymnasium kernel envs) is not importable")

from agents.config import TrainConfig
from agents.policies import Policy
from agents.rollout import EnvPool
from agents.trainer import train

ENV = "kernel_env/KernelBench-L1-v0"

TORCH_ONLY = """```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)
```"""


def test_cli_train_tiny_on_kernelbench_l1_interpreter(tmp_path):
    """``kernel-agents train --model tiny`` for a few steps: completes, logs one honest line per step."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "agents.cli", "train", "--algo", "trloo", "--env", ENV, "--model", "tiny",
           "--backend", "interpreter", "--steps", "3", "--out", str(out), "--no-progress",
           "--set", "tasks_per_step=2", "--set", "group_size=2", "--set", "max_turns=2",
           "--set", "max_new_tokens=32", "--set", "max_context=512"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        # a random tiny model writes no code: nothing is correct, fast or hacked, and no reward is invented
        assert r["turns"] == 2 * 2 * 2 and r["trajectories"] == 4
        assert r["reward"] == 0.0 and r["correct"] == 0.0 and r["fast_1"] == 0.0 and r["hack_rate"] == 0.0
        assert r["coverage"] is None and r["context_cut_share"] == 1.0 and r["prompt_tokens"] <= 512 - 32
        assert r["tokens_per_s"] > 0 and r["mismatch_kl"] < 1e-6
    assert (out / "metrics.png").exists() and (out / "checkpoints" / "step_000003" / "policy").is_dir()


def test_trainer_metrics_on_real_evaluations(tmp_path, evaluator, relu):
    """Scripted answers through the real evaluator: the bundled solution, a PyTorch-only 'kernel'
    (a hack), and text without code. The logged rates must be exactly what was submitted."""
    answers = [relu.solution, TORCH_ONLY, "no code here", relu.solution]
    policy = Policy.tiny(seed=0, hidden_size=64, num_hidden_layers=1, intermediate_size=128)
    sampler = ScriptedSampler(policy, lambda prompt, k: answers[k % 4])
    pool = EnvPool.make(ENV, 4, evaluator=evaluator, tasks=[relu], max_turns=1)
    assert pool.parallel and pool.task_ids() == [relu.id]
    cfg = TrainConfig(algo="trloo", env=ENV, steps=1, tasks_per_step=1, group_size=4, max_turns=1,
                      max_new_tokens=1200, max_context=2048, progress=False, plot=False, out_dir=str(tmp_path))
    try:
        m = train(cfg, policy=policy, pool=pool, sampler=sampler).history[0]
    finally:
        pool.close()
    assert m["hack_rate"] == 0.25
    assert m["correct"] >= 0.5  # the two solutions (the hack may also compute the right values)
    assert m["coverage"] > 0.5 and m["fast_1"] == 0.0  # the shipped ReLU models at parity (memory-bound)
    # drkernel reward: 1 + speedup + coverage (the modelled speedup the env paid) for the two clean
    # solutions, 0 for the hack and the text
    assert m["reward"] == pytest.approx(2 * (1 + m["speedup"] + m["coverage"]) / 4, rel=1e-6)
    assert m["optimizer_steps"] >= 1 and m["advantage_abs"] > 0
    assert m["prs_kept"] == 1.0 and m["rejected_share"] == 0.0
