"""Advantage levels: at which granularity an estimator from ``ADVANTAGE_ESTIMATORS`` is applied.

Rows are turn samples of multi-turn trajectories; a level adapts them to an estimator and spreads
the result back to one advantage per row. Every level has the same signature, so the trainer can
pick one by name from ``ADVANTAGE_LEVELS``::

    level(estimator, rewards[N], *, group_ids[N], traj_ids[N], turns[N], gamma=1.0, **inputs) -> advantages[N]

- ``turn``: each turn is compared with the same turn of the other trajectories of its task, on
  returns-to-go. An estimator marked ``reads_trajectories`` (``trloo``) forms the returns itself,
  so it gets the per-turn rewards and the ids.
- ``trajectory``: one return per trajectory (from its first turn), the estimator over the
  trajectories of a task, and that advantage broadcast to every turn of the trajectory.

``inputs`` are extra keyword inputs of the estimator that hold one value per row (e.g. the
``baseline_means`` of ``global_mean``); a level hands them over aligned with the rows it passes on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._groups import register
from .advantages import AdvantageFn, returns_to_go

AdvantageLevel = Callable[..., Tensor]
ADVANTAGE_LEVELS: dict[str, AdvantageLevel] = {}


@register(ADVANTAGE_LEVELS, "turn")
def turn_level(
    estimator: AdvantageFn,
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor,
    turns: Tensor,
    gamma: float = 1.0,
    **inputs: Tensor,
) -> Tensor:
    """The estimator per (task, turn) on returns-to-go; a ``reads_trajectories`` one gets the raw rows."""
    if getattr(estimator, "reads_trajectories", False):
        return estimator(rewards, group_ids=group_ids, traj_ids=traj_ids, turns=turns, gamma=gamma, **inputs)
    ret = returns_to_go(rewards, traj_ids=traj_ids, turns=turns, gamma=gamma)
    return estimator(ret, group_ids=group_ids * (int(turns.max()) + 1) + turns, **inputs)


@register(ADVANTAGE_LEVELS, "trajectory")
def trajectory_level(
    estimator: AdvantageFn,
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor,
    turns: Tensor,
    gamma: float = 1.0,
    **inputs: Tensor,
) -> Tensor:
    """The estimator over trajectory returns within each task, broadcast to every turn of a trajectory."""
    ret = returns_to_go(rewards, traj_ids=traj_ids, turns=turns, gamma=gamma)
    first = first_turn_mask(traj_ids, turns)  # one row per trajectory carries its return from the start
    traj_adv = estimator(ret[first], group_ids=group_ids[first], **{k: v[first] for k, v in inputs.items()})
    by_traj = dict(zip(traj_ids[first].tolist(), traj_adv.tolist()))
    return torch.tensor([by_traj[k] for k in traj_ids.tolist()], dtype=ret.dtype)


def first_turn_mask(traj_ids: Tensor, turns: Tensor) -> Tensor:
    """True at the earliest turn of each trajectory (the row whose return-to-go is the whole return)."""
    first: dict[int, tuple[int, int]] = {}
    for i, (k, t) in enumerate(zip(traj_ids.tolist(), turns.tolist())):
        if k not in first or t < first[k][0]:
            first[k] = (t, i)
    out = torch.zeros(len(traj_ids), dtype=torch.bool)
    out[[i for _, i in first.values()]] = True
    return out
