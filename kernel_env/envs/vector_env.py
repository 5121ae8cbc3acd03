"""``KernelVectorEnv``: N kernel episodes stepped together, all N evaluations in flight at once.

``step(actions)`` submits every action to the shared evaluator before waiting for any result, so the
pool's workers evaluate them in parallel (SyncVectorEnv would evaluate one after another, and
AsyncVectorEnv would start one evaluator per subprocess).

Batches: observations are a tuple of N ``str``; rewards, terminations and truncations are NumPy arrays;
infos follow Gymnasium's vector convention (``info[key][i]`` with a mask ``info["_" + key]``).

Autoreset mode: ``SAME_STEP``. An episode that ends is reset inside the same ``step``: its slot in
the returned observations already holds the next task's prompt, and the last feedback and info are in
``infos["final_obs"][i]`` / ``infos["final_info"]`` (mask ``infos["_final_obs"]``). For an LLM policy
each action is an expensive generation; with ``NEXT_STEP`` every finished episode would cost one
generation that the env throws away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..evaluator import BaseEvaluator
from .split_step import step_all
from .text_env import KernelEnv


class KernelVectorEnv(VectorEnv):
    """``num_envs`` independent ``KernelEnv`` episodes sharing one task list and one evaluator pool.

    ``env_kwargs`` are ``KernelEnv``'s options; the copies share a pool because they ask for the same
    one (``evaluator=``, ``workers=`` or the default). ``reset(seed=s)`` seeds episode ``i`` with
    ``s + i``; ``options={"task_id": ID}`` puts every episode on one task (a GRPO group), and
    ``options={"task_ids": [...]}`` chooses one task per episode.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi"], "render_fps": 4, "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(self, num_envs: int = 1, **env_kwargs):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, not {num_envs}")
        first = KernelEnv(**env_kwargs)
        # one task list for every copy (levels already applied), on the backend and size the first chose
        same = {**env_kwargs, "tasks": first.tasks, "levels": None, "backend": first.backend, "size": first.size}
        self.envs = [first] + [KernelEnv(**same) for _ in range(num_envs - 1)]
        self.num_envs = num_envs
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    @property
    def evaluator(self) -> BaseEvaluator:
        """The pool every copy uses."""
        return self.envs[0].evaluator

    @property
    def tasks(self) -> list:
        return self.envs[0].tasks

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[tuple[str, ...], dict]:
        super().reset(seed=seed if isinstance(seed, int) else None)
        seeds = _per_env_seeds(seed, self.num_envs)
        options = dict(options or {})
        task_ids = options.pop("task_ids", None)
        if task_ids is not None and len(task_ids) != self.num_envs:
            raise ValueError(f"options['task_ids'] needs {self.num_envs} ids, got {len(task_ids)}")
        observations, infos = [], {}
        for i, env in enumerate(self.envs):
            env_options = dict(options, task_id=task_ids[i]) if task_ids is not None else options
            obs, info = env.reset(seed=seeds[i], options=env_options)
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        return tuple(observations), infos

    def step(self, actions: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        steps = step_all(self.envs, actions)  # every evaluation in flight before any wait
        observations = []
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        infos: dict = {}
        for i, (env, step) in enumerate(zip(self.envs, steps)):
            obs, rewards[i], terminations[i], truncations[i], info = step
            if terminations[i] or truncations[i]:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = env.reset()
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        return tuple(observations), rewards, terminations, truncations, infos

    def render(self) -> tuple[str | None, ...]:
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs) -> None:
        for env in self.envs:
            env.close()


def _per_env_seeds(seed, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"a list of seeds needs {n} entries, got {len(seeds)}")
    return seeds
