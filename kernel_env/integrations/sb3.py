"""Stable-Baselines3: the numeric tuning env and the helpers its recipe uses to score a policy.

SB3 needs numeric spaces, so it trains on ``KernelTuningEnv`` (choose a launch configuration), not on
the text envs. Example: ``benchmarks/`` and the README's SB3 section.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..envs.launch_variants import Candidate, candidates, launch_variant
from ..envs.tuning_env import DEFAULT_TASKS, FAMILIES, OBS_SIZE, KernelTuningEnv, family, task_features

__all__ = [
    "DEFAULT_TASKS", "FAMILIES", "OBS_SIZE", "Candidate", "KernelTuningEnv", "candidates", "episode_seeds", "family",
    "launch_variant", "mean_reward", "model_policy", "random_policy", "task_features",
]


def episode_seeds(n: int, base: int = 10_000) -> list[int]:
    return [base + i for i in range(n)]


def mean_reward(env: KernelTuningEnv, choose, seeds: Sequence[int]) -> float:
    """Mean episode return of ``choose(obs, env) -> action`` over episodes reset with ``seeds``."""
    totals = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, r, terminated, truncated, _ = env.step(choose(obs, env))
            total += r
            done = terminated or truncated
        totals.append(total)
    return float(np.mean(totals))


def random_policy(seed: int):
    """A uniformly random choice among the current task's candidates (padding never chosen), seeded."""
    rng = np.random.default_rng(seed)
    return lambda obs, env: int(rng.choice(np.flatnonzero(env.action_masks())))


def model_policy(model, masked: bool = False):
    """An SB3 model as a deterministic ``choose`` (with the env's masks for MaskablePPO)."""
    if masked:
        return lambda obs, env: int(model.predict(obs, deterministic=True, action_masks=env.action_masks())[0])
    return lambda obs, env: int(model.predict(obs, deterministic=True)[0])
