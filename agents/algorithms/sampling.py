"""Adaptive sampling: Reinforce-Ada (Xiong et al. 2025).

Instead of a fixed group per task, sample in rounds and stop each task as soon as it has the signal
a group needs (a positive, or both classes); hard tasks get more samples, solved ones fewer. The
kept group is then balanced, and the advantage baseline uses every sample collected for the task
(``advantages.global_mean``), which stays informative when the kept group is all one class.

``generate_and_score(task_ids, k)`` is the caller's sampler: it receives the still-active task ids
(one batched call per round) and returns a flat list of ``len(task_ids) * k`` scored samples, task
by task: the first k belong to ``task_ids[0]``, the next k to ``task_ids[1]``, and so on. A scored
sample is any object with a numeric ``.reward`` attribute (``ScoredSample`` is a minimal one;
attach anything else the trainer needs through ``data``).

With multi-turn samples the baseline is per (task, turn) on returns-to-go: ``global_return_baselines``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from ._groups import dense_ids, group_sum
from .advantages import returns_to_go

EXIT_RULES = ("positive", "balanced")


class Scored(Protocol):
    reward: float


@dataclass
class ScoredSample:
    reward: float
    data: Any = None


@dataclass
class TaskStats:
    """Everything collected for one task during adaptive sampling (kept or not)."""

    n_samples: int = 0
    n_positive: int = 0
    reward_sum: float = 0.0
    rounds: int = 0  # rounds in which this task was sampled
    exited: bool = False  # the exit rule held (False: the budget ran out first)

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.n_samples if self.n_samples else 0.0


@dataclass
class AdaResult:
    kept: dict[Hashable, list]  # task id -> down-sampled group, in task_ids order
    stats: dict[Hashable, TaskStats]
    rounds: int  # number of generate_and_score calls made
    samples: dict[Hashable, list] = field(default_factory=dict)  # task id -> every sample collected

    @property
    def baseline_means(self) -> dict[Hashable, float]:
        """Task id -> mean reward over all collected samples (the ``global_mean`` baseline)."""
        return {task: s.mean_reward for task, s in self.stats.items()}

    def flatten(self) -> tuple[list, Tensor, Tensor, Tensor]:
        """Kept samples as one batch: (samples, rewards[N], group_ids[N], baselines[N]).

        ``group_ids`` is the task's position in ``task_ids``; pass ``baselines`` as
        ``global_mean(rewards, group_ids=group_ids, baseline_means=baselines)``.
        """
        samples, groups, baselines = [], [], []
        for position, (task, group) in enumerate(self.kept.items()):
            samples.extend(group)
            groups.extend([position] * len(group))
            baselines.extend([self.stats[task].mean_reward] * len(group))
        rewards = torch.tensor([float(s.reward) for s in samples], dtype=torch.get_default_dtype())
        return samples, rewards, torch.tensor(groups, dtype=torch.long), torch.tensor(baselines, dtype=rewards.dtype)


def exit_rule_holds(n_positive: int, n_negative: int, *, n: int, exit: str) -> bool:
    """positive: at least one positive; balanced: at least n/2 positives and n/2 negatives."""
    if exit == "positive":
        return n_positive >= 1
    if exit == "balanced":
        return 2 * n_positive >= n and 2 * n_negative >= n
    raise ValueError(f"unknown exit rule {exit!r}; expected one of {EXIT_RULES}")


def balanced_downsample(samples: Sequence[Scored], n: int, *, threshold: float, rng: random.Random) -> list:
    """Pick n samples aiming at ceil(n/2) positives and floor(n/2) negatives, filling from the other class.

    Fewer than n samples are all kept. The picks keep their collection order.
    """
    positives = [i for i, s in enumerate(samples) if s.reward > threshold]
    negatives = [i for i, s in enumerate(samples) if not s.reward > threshold]
    n_pos = min(len(positives), max(n - n // 2, n - len(negatives)))
    n_neg = min(len(negatives), n - n_pos)
    chosen = rng.sample(positives, n_pos) + rng.sample(negatives, n_neg)
    return [samples[i] for i in sorted(chosen)]


def reinforce_ada(
    task_ids: Sequence[Hashable],
    generate_and_score: Callable[[list, int], Sequence[Scored]],
    *,
    n: int = 4,
    m: int = 8,
    max_rounds: int = 4,
    threshold: float = 0.7,
    exit: str = "positive",
    rng: random.Random | None = None,
) -> AdaResult:
    """Reinforce-Ada: sample m per active task per round, for at most ``max_rounds`` rounds.

    A sample is positive when reward > ``threshold``. After each round, a task whose exit rule holds
    (``exit_rule_holds``) leaves the active set; no task ever gets more than ``max_rounds * m``
    samples. Each task's samples are then down-sampled to n (``balanced_downsample``).
    ``rng`` drives the down-sampling (a fresh unseeded one when None).
    """
    if exit not in EXIT_RULES:
        raise ValueError(f"unknown exit rule {exit!r}; expected one of {EXIT_RULES}")
    if min(n, m, max_rounds) < 1:
        raise ValueError("n, m and max_rounds must be >= 1")
    task_ids = list(task_ids)
    if len(set(task_ids)) != len(task_ids):
        raise ValueError("task_ids must be unique")
    rng = rng if rng is not None else random.Random()
    samples: dict[Hashable, list] = {task: [] for task in task_ids}
    stats = {task: TaskStats() for task in task_ids}
    active = list(task_ids)
    rounds = 0
    while active and rounds < max_rounds:
        batch = list(generate_and_score(list(active), m))
        if len(batch) != len(active) * m:
            raise ValueError(f"generate_and_score returned {len(batch)} samples for {len(active)} tasks x {m}")
        rounds += 1
        still_active = []
        for position, task in enumerate(active):
            new = batch[position * m : (position + 1) * m]
            samples[task].extend(new)
            s = stats[task]
            s.rounds += 1
            s.n_samples += len(new)
            s.n_positive += sum(1 for x in new if x.reward > threshold)
            s.reward_sum += sum(float(x.reward) for x in new)
            s.exited = exit_rule_holds(s.n_positive, s.n_samples - s.n_positive, n=n, exit=exit)
            if not s.exited:
                still_active.append(task)
        active = still_active
    kept = {task: balanced_downsample(samples[task], n, threshold=threshold, rng=rng) for task in task_ids}
    return AdaResult(kept=kept, stats=stats, rounds=rounds, samples=samples)


def global_return_baselines(rewards: Tensor, *, group_ids: Tensor, traj_ids: Tensor, turns: Tensor,
                            gamma: float = 1.0) -> Tensor:
    """Each row's mean return-to-go over every row of its (task, turn): the multi-turn global baseline.

    Pass the rows of *every* trajectory collected for the tasks, kept or not (that is what makes the
    baseline global), then index the result at the kept rows and hand it to ``global_mean`` as
    ``baseline_means``. Sums run in the dtype of ``rewards``.
    """
    ret = returns_to_go(rewards, traj_ids=traj_ids, turns=turns, gamma=gamma)
    index, k = dense_ids(group_ids, turns)
    return (group_sum(ret, index, k) / group_sum(torch.ones_like(ret), index, k))[index]


def global_positive_share(rewards: Tensor, *, group_ids: Tensor, traj_ids: Tensor, turns: Tensor,
                          threshold: float, gamma: float = 1.0) -> Tensor:
    """Reinforce-Ada's count-based baseline (its reference script's ``global_stat_est``): the share of
    positives (return-to-go above ``threshold``) among every row collected at the row's (task, turn),
    i.e. the mean of the rewards rebuilt as 1 for each positive and 0 for each negative; 0 where at
    most one row was collected. Built for 0/1 rewards: with graded rewards it sits on another scale
    than the rewards it is subtracted from (``ada_baseline="mean"`` then)."""
    ret = returns_to_go(rewards, traj_ids=traj_ids, turns=turns, gamma=gamma)
    index, k = dense_ids(group_ids, turns)
    positives = group_sum((ret > threshold).to(ret.dtype), index, k)
    count = group_sum(torch.ones_like(ret), index, k)
    return torch.where(count > 1, positives / count.clamp(min=1), torch.zeros_like(count))[index]
