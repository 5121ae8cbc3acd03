"""Stepping many envs at once: the one path the vector env and ``agents`` both use.

An env whose step is an evaluation can split it: ``submit(action)`` starts the evaluation and
returns a future, ``finish_step(action, result)`` turns the result into the step's tuple.
``step_all`` submits every action before it waits for any result, so a pool of N workers scores N
actions in parallel; envs that do not split their step are stepped one after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SplitStepEnv(Protocol):
    def submit(self, action: Any) -> Future: ...

    def finish_step(self, action: Any, result: Any) -> tuple: ...


def step_all(envs: Sequence, actions: Sequence) -> list[tuple]:
    """``env.step(action)`` for every pair, in order, with every split step in flight at once."""
    if len(envs) != len(actions):
        raise ValueError(f"{len(envs)} envs but {len(actions)} actions")
    futures = [env.submit(a) if isinstance(env, SplitStepEnv) else None for env, a in zip(envs, actions)]
    return [env.step(a) if f is None else env.finish_step(a, f.result()) for env, a, f in zip(envs, actions, futures)]
