"""SkyRL-gym: ``KernelEnv`` as a ``skyrl_gym`` text env, registered under ``"kernel_env"``.

Tested with skyrl-gym 0.4.0. SkyRL's generator makes one env per trajectory with
``skyrl_gym.make(env_class, env_config=..., extras=row_extras)``, calls ``init(prompt)`` and then
``step(reply)`` until ``done``. Here:

- ``env_config`` holds ``KernelEnv`` arguments (``tasks``, ``levels``, ``backend``, ``size``,
  ``reward``, ``dtype``, ``tolerance``, ``terminate_on_success``, ``max_turns``); a Hydra
  ``DictConfig`` or a plain dict. Episodes share the process-wide evaluator pool of the backend;
  ``evaluator=`` (a live pool) can only be passed to ``make`` directly, not through a config.
- ``extras`` (the dataset row's other columns) name the episode's task: ``task_id`` at the top or
  under ``extra_info``; ``max_turns`` there (the generator always sets it) wins over the config.
- ``dataset_rows()`` builds those rows (``prompt``, ``env_class``, ``task_id``) for a parquet file.

Each turn's reward is what ``KernelEnv.step`` pays for that reply; SkyRL places it at the turn's
last token (when it retokenizes the chat with a custom template, only the last turn's counts). When
``done``, ``observations`` is empty (the generator would never show a final message to the model);
the final feedback stays in ``metadata["feedback"]``.

Limits: SkyRL's trainer itself (skyrl-train: Ray, vLLM, GPUs) is not installed or tested here, only
the skyrl-gym env contract that its generator drives. Evaluations block ``step`` (seconds per reply);
SkyRL's generator can run ``step`` in a thread pool, so trajectories still overlap on the shared pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENV_ID = "kernel_env"
ENTRY_POINT = "kernel_env.integrations.skyrl:KernelSkyRLEnv"

__all__ = ["ENTRY_POINT", "ENV_ID", "KernelSkyRLEnv", "dataset_rows", "make", "register"]  # noqa: F822 (lazy)

#: ``env_config`` keys passed on to ``KernelEnv`` (SkyRL configs carry keys of their own). Not
#: ``workers``: a sized pool closes with its last env, and SkyRL closes every env after each batch.
KERNEL_ENV_KEYS = ("tasks", "levels", "backend", "size", "max_turns", "reward", "dtype", "tolerance",
                   "terminate_on_success", "max_text_length")


def register(env_id: str = ENV_ID) -> None:
    """Register ``env_id`` with skyrl_gym's registry (idempotent: SkyRL workers may import twice)."""
    import skyrl_gym

    if env_id not in skyrl_gym.registry:
        skyrl_gym.register(id=env_id, entry_point=ENTRY_POINT)


def make(env_config: Any = None, extras: Mapping | None = None, **kwargs):
    """``skyrl_gym.make("kernel_env", ...)`` after registering; ``kwargs`` reach the constructor."""
    import skyrl_gym

    register()
    return skyrl_gym.make(ENV_ID, env_config=env_config, extras=dict(extras or {}), **kwargs)


def dataset_rows(tasks="bundled", levels=None, backend: str = "auto", size: str | None = None,
                 max_turns: int = 3, env_class: str = ENV_ID) -> list[dict]:
    """One SkyRL dataset row per task: the prompt the env will show, and the extras naming the task."""
    from ..envs.text_env import KernelEnv

    env = KernelEnv(tasks=tasks, levels=levels, backend=backend, size=size, max_turns=max_turns)
    rows = []
    for task in env.tasks:
        prompt, info = env.reset(options={"task_id": task.id})
        rows.append({"prompt": [{"role": "user", "content": prompt}], "env_class": env_class,
                     "task_id": task.id, "extra_info": {"task_id": task.id, "level": info["level"]}})
    env.close()
    return rows


def __getattr__(name: str):
    """``KernelSkyRLEnv`` subclasses skyrl_gym's class, so it is built on first use."""
    if name == "KernelSkyRLEnv":
        cls = _build()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build():
    from skyrl_gym.envs.base_text_env import BaseTextEnv

    class KernelSkyRLEnv(BaseTextEnv):
        """One trajectory on one kernel task: ``init`` resets, each ``step`` evaluates one reply."""

        def __init__(self, env_config: Any = None, extras: Mapping | None = None, evaluator=None):
            from ..envs.text_env import KernelEnv

            super().__init__()
            config = _plain(env_config)
            extras = dict(extras or {})
            kwargs = {k: config[k] for k in KERNEL_ENV_KEYS if config.get(k) is not None}
            if extras.get("max_turns") is not None:
                kwargs["max_turns"] = int(extras["max_turns"])
            if kwargs.get("levels") is not None:
                kwargs["levels"] = tuple(kwargs["levels"])
            self.env = KernelEnv(evaluator=evaluator, **kwargs)
            self.max_turns = self.env.max_turns
            info = extras.get("extra_info") or {}
            self.task_id = extras.get("task_id") or info.get("task_id")
            self.seed = extras.get("seed", info.get("seed"))

        def init(self, prompt=None):
            """Reset on the row's task; the prompt is the env's own (system messages kept)."""
            options = {"task_id": self.task_id} if self.task_id else None
            first, info = self.env.reset(seed=self.seed, options=options)
            self.turns = 0
            system = [dict(m) for m in (prompt or []) if m.get("role") == "system"]
            return [*system, {"role": "user", "content": first}], _metadata(info)

        def step(self, action: str):
            from skyrl_gym.envs.base_text_env import BaseTextEnvStepOutput

            feedback, reward, terminated, truncated, info = self.env.step(action)
            self.turns += 1
            done = terminated or truncated
            observations = [] if done else [{"role": "user", "content": feedback}]
            return BaseTextEnvStepOutput(observations=observations, reward=reward, done=done,
                                         metadata={**_metadata(info), "feedback": feedback})

        def get_metrics(self) -> dict[str, Any]:
            env = self.env
            return {"turns": self.turns, "best_speedup": env.best_speedup,
                    "correct": float(any(r.clean for r in env.results)),
                    "hacked": float(any(r.hacks for r in env.results)),
                    "best_reward": max(env.rewards, default=0.0)}

        def close(self):
            self.env.close()

    KernelSkyRLEnv.__qualname__ = "KernelSkyRLEnv"  # importable (and picklable) by name
    return KernelSkyRLEnv


def _plain(config: Any) -> dict:
    """An OmegaConf ``DictConfig`` (what SkyRL passes), a dict or ``None`` as a plain dict."""
    if config is None:
        return {}
    from omegaconf import OmegaConf  # a skyrl-gym dependency

    return OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else dict(config)


def _metadata(info: dict) -> dict:
    """The step info without the transcript (SkyRL keeps its own chat history)."""
    return {k: v for k, v in info.items() if k != "messages"}
