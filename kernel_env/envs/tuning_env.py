"""Autotuning as RL: a numeric wrapper so SB3 (PPO, MaskablePPO, DQN) can learn on kernel tasks.

SB3 has no text spaces, so instead of writing code the agent *chooses* one of a fixed list of
candidate programs for the current task: the task's shipped Triton solution rewritten under several
launch configurations (``BLOCK*`` constants scaled, ``num_warps``/``num_stages`` set) plus two
deliberately naive variants (a tiny-block kernel that is correct but slow, and a PyTorch fallback that
the evaluator flags as a hack). The observation is a ``Box`` of task features (operator family, level,
log sizes, dtype) plus the outcome of the previous choice (log speedup, correctness, turn).

An episode is ``turns`` choices on one task (default 1: a contextual bandit; with more turns the
last outcome in the observation lets a policy react). Every choice is evaluated by the shared
evaluator, whose result cache makes repeated (task, program) pairs instant: ``prewarm()`` evaluates
every candidate once so training steps cost milliseconds. The default reward is the speedup over the
shipped solution (``reward="relative"``), gated like the env's presets; see ``KernelTuningEnv``.
The candidates come from ``launch_variants``; the SB3 recipe helpers live in ``kernel_env.integrations.sb3``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..evaluator import default_size
from ..scoring.result import EvalResult
from ..scoring.rewards import RewardConfig
from .launch_variants import candidates

DEFAULT_TASKS = ("L1/19_ReLU", "L1/8_Sigmoid", "L1/15_Swish", "L1/7_Matmul_scalar")
FAMILIES = ("elementwise", "matmul", "reduction", "normalization", "scan", "loss", "conv_pool")
_FAMILY_WORDS = (  # checked in order: the first family with a word in the task name wins
    ("elementwise", ("scalar", "clamp")),
    ("conv_pool", ("conv", "pool", "cnn")),
    ("loss", ("loss",)),
    ("scan", ("cumsum", "cumprod")),
    ("normalization", ("norm", "softmax")),
    ("reduction", ("reduction", "argmax", "argmin")),
    ("matmul", ("matmul", "matvec", "linear", "gemm", "mlp", "attention", "lstm", "transformer")),
)
DTYPES = ("float32", "float16", "bfloat16")
#: Observation layout: family one-hot, level, 3 log sizes, dtype one-hot (+ other), last outcome (3).
OBS_SIZE = len(FAMILIES) + 1 + 3 + len(DTYPES) + 1 + 3


# -- observation features -------------------------------------------------------------------------

def family(task) -> str:
    name = task.name.lower()
    for fam, words in _FAMILY_WORDS:
        if any(w in name for w in words):
            return fam
    return "elementwise"


def task_features(task, size: str) -> np.ndarray:
    """Static features: family one-hot, level, log2 sizes of the inputs (scaled to about [0, 1]), dtype.

    Inputs are built on the ``meta`` device, so even benchmark-size tasks cost no memory.
    """
    feats = np.zeros(OBS_SIZE - 3, dtype=np.float32)
    feats[FAMILIES.index(family(task))] = 1.0
    feats[len(FAMILIES)] = task.level / 3.0
    base = len(FAMILIES) + 1
    try:
        import torch

        module = task.materialise(size)
        with torch.device("meta"):
            inputs = [x for x in module.get_inputs() if isinstance(x, torch.Tensor)]
    except Exception:  # an input builder that needs real data: sizes unknown, still a valid observation
        inputs = []
    if inputs:
        first = inputs[0]
        dims = list(first.shape) or [1]
        feats[base] = math.log2(1 + sum(x.numel() for x in inputs)) / 40.0
        feats[base + 1] = math.log2(1 + dims[-1]) / 20.0
        feats[base + 2] = math.log2(1 + (dims[-2] if len(dims) > 1 else 1)) / 20.0
        dtype = str(next((x.dtype for x in inputs if x.is_floating_point()), first.dtype)).replace("torch.", "")
        feats[base + 3 + (DTYPES.index(dtype) if dtype in DTYPES else len(DTYPES))] = 1.0
    return np.clip(feats, -1.0, 1.0)


# -- the environment ------------------------------------------------------------------------------

class KernelTuningEnv(gym.Env):
    """Choose a launch configuration (or a naive variant) for a kernel task; reward from the evaluator.

    Args:
        evaluator: an ``Evaluator`` or ``RayEvaluator`` (any ``BaseEvaluator``); the env does not close it.
        tasks: ``Task`` objects or ids of bundled tasks; each needs a shipped solution.
        size: task size preset; default ``"small"`` on the interpreter, ``"full"`` on CUDA.
        turns: choices per episode (the observation carries the previous choice's outcome).
        reward: ``"relative"`` (default): gated like every preset (hack -> ``hack_value``, wrong ->
            ``failure_value``), else 1 + min(runtime_shipped / runtime, cap): the speedup over the
            shipped solution, which is what autotuning improves. Or any env reward (preset name,
            ``RewardConfig``, callable). Why not ``drkernel`` by default: on the interpreter the
            speedup over PyTorch is ~1e-3 for every configuration, and its coverage term is higher
            for *slower* kernels (the kernel's share of the time grows), so it ranks tiny blocks first.
        candidate_options: keyword arguments for ``candidates()`` (``scales``, ``num_warps``, ...).
        config: ``EvalConfig`` for every evaluation; default: the evaluator's.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, evaluator, tasks: Sequence = DEFAULT_TASKS, size: str | None = None, turns: int = 1,
                 reward: str | RewardConfig | Any = "relative", candidate_options: dict | None = None,
                 config=None, render_mode: str | None = None):
        if turns < 1:
            raise ValueError(f"turns must be at least 1, not {turns}")
        self.evaluator = evaluator
        self.size = size or default_size(evaluator.backend)
        self.tasks = _resolve_tasks(tasks, self.size)
        self.turns = int(turns)
        self.relative = reward == "relative"
        self.reward_config = RewardConfig.of("drkernel" if self.relative else reward)
        self.config = config
        self.render_mode = render_mode
        self.candidates = [candidates(t, **(candidate_options or {})) for t in self.tasks]
        self.features = [task_features(t, self.size) for t in self.tasks]
        self.n_actions = max(len(c) for c in self.candidates)
        self.action_space = spaces.Discrete(self.n_actions)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(OBS_SIZE,), dtype=np.float32)
        self._baselines: dict = {}  # task index -> Future of the shipped solution's result
        self.index, self.turn, self.last = 0, 0, None
        self.history: list[tuple[str, float]] = []

    # -- evaluation -------------------------------------------------------------------------------

    def _submit(self, task, reply: str):
        return self.evaluator.submit(task, reply, size=self.size, config=self.config)

    def prewarm(self) -> list[list[EvalResult]]:
        """Evaluate every candidate (and each shipped solution) once, all in flight together: after
        this, steps are result-cache hits. Returns the results per task, in action order."""
        futures = [[self._submit(t, c.reply) for c in cs] for t, cs in zip(self.tasks, self.candidates)]
        if self.relative:
            for i in range(len(self.tasks)):
                self._baseline_future(i)
        return [[f.result() for f in fs] for fs in futures]

    def _baseline_future(self, index: int):
        if index not in self._baselines:
            self._baselines[index] = self._submit(self.tasks[index], self.tasks[index].solution)
        return self._baselines[index]

    def baseline(self, index: int) -> EvalResult:
        """The shipped solution's result for task ``index``: the yardstick of the relative reward."""
        return self._baseline_future(index).result()

    def reward(self, index: int, result: EvalResult) -> float:
        if not self.relative:
            return float(self.reward_config(result))
        cfg, base = self.reward_config, self.baseline(index)
        gated = cfg.gate(result)
        if gated is not None:
            return gated
        if not (base.runtime_ms and result.runtime_ms):
            return 1.0
        return 1.0 + min(base.runtime_ms / result.runtime_ms, cfg.speedup_cap)

    # -- Gymnasium API ----------------------------------------------------------------------------

    def action_masks(self) -> np.ndarray:
        """Valid actions for the current task (MaskablePPO): padding beyond its candidates is masked."""
        mask = np.zeros(self.n_actions, dtype=bool)
        mask[: len(self.candidates[self.index])] = True
        return mask

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id")
        if task_id is None:
            self.index = int(self.np_random.integers(len(self.tasks)))
        else:
            ids = [t.id for t in self.tasks]
            if task_id not in ids:
                raise ValueError(f"no task {task_id!r} in this env ({', '.join(ids)})")
            self.index = ids.index(task_id)
        self.turn, self.last, self.history = 0, None, []
        return self._observation(), {"task_id": self.tasks[self.index].id, "turn": 0}

    def step(self, action):
        action = int(action)
        options = self.candidates[self.index]
        task = self.tasks[self.index]
        self.turn += 1
        if 0 <= action < len(options):
            result = self._submit(task, options[action].reply).result()
            reward, name = self.reward(self.index, result), options[action].name
        else:  # a padding action (only reachable without masks): costs a turn, earns the failure value
            result = EvalResult(task_id=task.id, error=f"action {action} is not a candidate for {task.id}")
            reward, name = float(self.reward_config.failure_value), "invalid"
        self.last = result
        self.history.append((name, reward))
        truncated = self.turn >= self.turns
        info = {"task_id": task.id, "turn": self.turn, "candidate": name, "correct": bool(result.correct),
                "hacks": list(result.hacks), "speedup": result.speedup, "runtime_ms": result.runtime_ms,
                "error": result.error}
        return self._observation(), float(reward), False, bool(truncated), info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        lines = [f"task {self.tasks[self.index].id}"] + [f"  {n}: reward {r:.3f}" for n, r in self.history]
        return "\n".join(lines) + "\n"

    def _observation(self) -> np.ndarray:
        last = np.zeros(3, dtype=np.float32)
        if self.last is not None:
            speedup = self.last.speedup or 0.0
            last[0] = np.clip(math.log2(speedup) / 16.0, -1.0, 1.0) if speedup > 0 else -1.0
            last[1] = float(self.last.correct and not self.last.hacks)
        last[2] = self.turn / self.turns
        return np.concatenate([self.features[self.index], last]).astype(np.float32)


def _resolve_tasks(tasks: Sequence, size: str) -> list:
    from tasks import load_tasks

    ids = [t for t in tasks if isinstance(t, str)]
    by_id = {t.id: t for t in load_tasks("bundled", size=size)} if ids else {}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"unknown bundled task ids: {', '.join(missing)}")
    out = [by_id[t] if isinstance(t, str) else t for t in tasks]
    if not out:
        raise ValueError("no tasks")
    return out
