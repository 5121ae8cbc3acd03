"""Collection strategies: how one training step's rollouts are drawn, looked up by ``AlgoConfig.sampling``.

A strategy returns a ``Collection``: the rollout to train on, the extra row inputs its advantage
estimator needs (Reinforce-Ada's global baseline), and counters for the log. So the trainer runs
any strategy the same way and never asks which one it ran.

Strategies sample through ``rollouts(task_ids, *, group_size, seed, first_traj=0) -> Rollout``:
``agents.rollout.collect`` with the policy, the envs and the sampling settings already bound.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .algorithms import global_positive_share, global_return_baselines, reinforce_ada
from .config import AlgoConfig, TrainConfig
from .rollout import Rollout, sample_tensors

RolloutFn = Callable[..., Rollout]


@dataclass
class Collection:
    """One step's rollout plus what the advantage estimator and the log need besides its rows."""

    rollout: Rollout
    advantage_inputs: dict[str, Tensor] = field(default_factory=dict)  # estimator keywords, one value per row
    stats: dict[str, int] = field(default_factory=dict)  # logged with the step's metrics
    #: what the step's outcome metrics (reward, correct, fast_1, ...) are measured on, when not the trained
    #: rollout: Reinforce-Ada keeps groups balanced toward positives, so their mean reward overstates
    #: the policy; every trajectory it drew does not
    measured: Rollout | None = None


@dataclass(frozen=True)
class Collector:
    """A strategy: how many envs it steps per task at once (to size the pool), and how it collects."""

    envs_per_task: Callable[[AlgoConfig, TrainConfig], int]
    collect: Callable[..., Collection]  # (rollouts, task_ids, algo, config, *, seed) -> Collection
    provides: tuple[str, ...] = ()  # the ``advantage_inputs`` it returns: the estimator must take them


def collect_groups(rollouts: RolloutFn, tasks: list, algo: AlgoConfig, config: TrainConfig, *,
                   seed: int) -> Collection:
    """``group_size`` trajectories per task, in one batched collection."""
    return Collection(rollouts(tasks, group_size=config.group_size, seed=seed))


def collect_reinforce_ada(rollouts: RolloutFn, tasks: list, algo: AlgoConfig, config: TrainConfig, *,
                          seed: int) -> Collection:
    """Reinforce-Ada rounds; the kept groups come with the global baseline over every collected trajectory."""
    if None in tasks:
        raise ValueError("reinforce_ada needs an env that lists its task ids (task_ids or tasks)")
    tasks = list(dict.fromkeys(tasks))  # Reinforce-Ada keys by task: a repeated task is one slot
    position = {t: k for k, t in enumerate(tasks)}
    round_seeds = (seed + 7919 * k for k in itertools.count())
    total = Rollout(trajectories=[])

    def generate_and_score(active: list, m: int):
        # one batched call per round; trajectory ids stay unique across rounds
        part = rollouts(active, group_size=m, seed=next(round_seeds), first_traj=len(total.trajectories))
        for traj in part.trajectories:  # group ids: the task's position in this step's task list
            traj.group = position[active[traj.group]]
            for turn in traj.turns:
                turn.group = traj.group
        total.extend(part)
        return part.trajectories

    ada = reinforce_ada(tasks, generate_and_score, n=algo.ada_n, m=algo.ada_m, max_rounds=algo.ada_rounds,
                        threshold=algo.ada_threshold, exit=algo.ada_exit, rng=random.Random(seed))
    kept = Rollout(trajectories=[traj for group in ada.kept.values() for traj in group],
                   generate_s=total.generate_s, env_s=total.env_s, generated_tokens=total.generated_tokens)
    return Collection(
        kept,
        advantage_inputs={"baseline_means": _global_baselines(total, kept, algo)},
        stats={"ada_rounds": ada.rounds, "ada_samples": sum(s.n_samples for s in ada.stats.values())},
        measured=total,
    )


def _global_baselines(total: Rollout, kept: Rollout, algo: AlgoConfig) -> Tensor:
    """Each kept row's baseline at its (task, turn) over every collected row: the share of positives
    (``ada_baseline="counts"``) or the mean return-to-go (``"mean"``)."""
    every = total.samples
    ids = sample_tensors(every)
    rewards = torch.tensor([s.reward for s in every], dtype=torch.float64)  # a mean over many rows: sum in double
    rows = dict(group_ids=ids["group_ids"], traj_ids=ids["traj_ids"], turns=ids["turns"], gamma=algo.gamma)
    if algo.ada_baseline == "counts":
        baselines = global_positive_share(rewards, threshold=algo.ada_threshold, **rows)
    else:
        baselines = global_return_baselines(rewards, **rows)
    row = {(s.traj, s.turn): i for i, s in enumerate(every)}
    return baselines[[row[(s.traj, s.turn)] for s in kept.samples]]


COLLECTORS: dict[str, Collector] = {
    "group": Collector(envs_per_task=lambda algo, config: config.group_size, collect=collect_groups),
    "reinforce_ada": Collector(envs_per_task=lambda algo, config: algo.ada_m, collect=collect_reinforce_ada,
                               provides=("baseline_means",)),
}
