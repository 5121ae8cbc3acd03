"""GEM (``gem-llm``): ``KernelEnv`` as a ``gem.Env``, registered as ``kernel_env:KernelBench-*``.

Tested with gem-llm 0.1.0. ``register()`` adds one GEM id per Gymnasium id of this package
(``kernel_env:KernelBench-L1-v0`` serves level 1, and so on); ``gem.make(id, **kwargs)`` then passes
``KernelEnv`` arguments (``backend``, ``max_turns``, ``reward``, ``evaluator``, ...) through.

GEM's ``reset(seed=None)`` takes no options, so the episode's task is chosen by

- ``task_id`` (constructor argument, or the attribute set before ``reset``; on ``env.unwrapped``
  once wrapped, as GEM's wrappers copy attributes when they wrap): always that task;
- otherwise the seed, as ``KernelEnv`` does: the same seed gives the same task, an unseeded reset
  continues the stream. ``seed=`` in the constructor seeds the first reset (``gem.make_vec`` passes
  ``seed + index`` to each env this way).

Observations are plain text (the first user message, then each turn's feedback), as in GEM's own
games; wrap with ``gem.wrappers.observation_wrapper.ObservationWrapper`` to get the conversation so
far. ``info`` is ``KernelEnv``'s (``correct``, ``hacks``, ``speedup``, ``messages``, ...).

Notes: ``import gem`` calls ``logging.basicConfig(level=INFO)`` (a side effect of the library, not of
this module), and a seeded reset reseeds Python's and NumPy's global RNGs, as ``gem.Env.reset``
does for every GEM env. ``spawn(same_state=True)`` copies the episode so far (``KernelEnv`` deep-copies
and pickles at any point; the copy shares the evaluator pool and takes its own hold).
"""

from __future__ import annotations

import copy
from typing import Any

from ..envs.registration import ENV_KWARGS

NAMESPACE = "kernel_env"
ENTRY_POINT = "kernel_env.integrations.gem:KernelGemEnv"
#: GEM id -> the ``KernelEnv`` arguments it fixes (the Gymnasium ids' own, renamed GEM-style)
GEM_KWARGS: dict[str, dict] = {f"{NAMESPACE}:{gym_id.split('/', 1)[1]}": kw for gym_id, kw in ENV_KWARGS.items()}
ENV_IDS = tuple(GEM_KWARGS)

__all__ = ["ENTRY_POINT", "ENV_IDS", "KernelGemEnv", "register"]  # noqa: F822 (built on first access)


def register() -> None:
    """Register every ``kernel_env:`` id with GEM; idempotent (``gem.register`` refuses duplicates)."""
    import gem
    from gem.envs.registration import ENV_REGISTRY

    for env_id, kwargs in GEM_KWARGS.items():
        if env_id not in ENV_REGISTRY:
            gem.register(env_id, ENTRY_POINT, **kwargs)


def __getattr__(name: str):
    """``KernelGemEnv`` subclasses ``gem.Env``, so it is built on first use."""
    if name == "KernelGemEnv":
        cls = _build()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build():
    import gem  # the library: absolute import, not this module

    class KernelGemEnv(gem.Env):
        """One kernel task per episode; each step evaluates one reply on the shared pool."""

        def __init__(self, task_id: str | None = None, seed: int | None = None, **kwargs: Any):
            from ..envs.text_env import KernelEnv

            super().__init__()
            self.env = KernelEnv(**kwargs)
            self.kwargs = dict(kwargs)
            self.task_id = task_id
            self.seed = seed
            self._first = True

        def reset(self, seed: int | None = None) -> tuple[str, dict[str, Any]]:
            if seed is None and self._first:
                seed = self.seed
            self._first = False
            super().reset(seed)
            options = {"task_id": self.task_id} if self.task_id else None
            return self.env.reset(seed=seed, options=options)

        def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
            return self.env.step(action)

        def sample_random_action(self) -> str:
            return self.env.action_space.sample()

        def spawn(self, same_state: bool = False, **kwargs: Any) -> KernelGemEnv:
            if same_state:
                return copy.deepcopy(self)
            return type(self)(**{"task_id": self.task_id, "seed": self.seed, **self.kwargs, **kwargs})

        def close(self) -> None:
            self.env.close()

    KernelGemEnv.__qualname__ = "KernelGemEnv"  # importable (and picklable) by name
    return KernelGemEnv
