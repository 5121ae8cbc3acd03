"""Advantage estimators: one scalar advantage per row from rewards and group ids.

Rows are turn samples. Every estimator has the same signature, so the trainer can pick one by name
from ``ADVANTAGE_ESTIMATORS``::

    fn(rewards[N], *, group_ids[N], traj_ids[N] | None = None, turns[N] | None = None,
       gamma=1.0, valid[N] | None = None, **options) -> advantages[N]

- ``group_ids``: the task (prompt) a row was sampled for. Any integer values; they need not be dense.
- ``traj_ids`` / ``turns``: the trajectory a row belongs to and its turn index. Only ``trloo`` reads
  them; every other estimator takes each row's reward as that row's return. ``trloo`` carries
  ``reads_trajectories = True`` so that callers can tell it forms the returns-to-go itself and
  should be given per-turn rewards (``levels.turn_level`` reads the mark).
- ``valid``: optional bool mask for padding. Invalid rows take part in no statistic (not in a group's
  size, mean, std or any return-to-go) and get advantage 0.
- Singleton groups (one valid row): ``rloo`` and ``trloo`` have no other sample to compare with, so
  the baseline is 0 and A = r (or A = G for trloo); ``grpo`` and ``dr_grpo`` give 0 (r minus its own
  mean); ``global_mean`` and ``reinforce`` do not depend on group size.

The advantage is per row; the policy loss broadcasts it over the row's tokens. No gradient flows
through advantages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ._groups import check_rows, dense_ids, group_sum, register

AdvantageFn = Callable[..., Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}


# --------------------------------------------------------------------------------------------------
# shared pieces


def _prepare(rewards: Tensor, group_ids: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor | None]:
    rewards = rewards.detach()
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    n = rewards.shape[0]
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    check_rows("group_ids", group_ids, n)
    check_rows("valid", valid, n)
    if valid is not None:
        valid = valid.to(device=rewards.device, dtype=torch.bool)
    return rewards, valid


def _only(valid: Tensor | None, tensor: Tensor | None) -> Tensor | None:
    return tensor if valid is None or tensor is None else tensor[valid]


def _spread(valid: Tensor | None, values: Tensor) -> Tensor:
    """Put per-valid-row values back at their rows; invalid rows get 0."""
    if valid is None:
        return values
    out = values.new_zeros(valid.shape[0])
    out[valid] = values
    return out


def _group_sum_count(values: Tensor, *ids: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """Per-row (group sum, group size), the dense group index and the number of groups."""
    index, k = dense_ids(*ids)
    count = group_sum(torch.ones_like(values), index, k)
    total = group_sum(values, index, k)
    return total[index], count[index], index, k


def leave_one_out_baseline(values: Tensor, *ids: Tensor) -> Tensor:
    """b_i = (1/(N-1)) sum_{j != i, j in group(i)} v_j; 0 when the row is alone in its group.

    The group is the tuple of ``ids`` (e.g. task id, or task id and turn index).
    """
    total, count, _, _ = _group_sum_count(values, *ids)
    others = count - 1
    return torch.where(others > 0, (total - values) / others.clamp(min=1), torch.zeros_like(values))


def returns_to_go(rewards: Tensor, *, traj_ids: Tensor, turns: Tensor, gamma: float = 1.0) -> Tensor:
    """G_{i,t} = r_{i,t} + gamma * G_{i,t+1} within each trajectory, rows ordered by ``turns``.

    ``turns`` only orders a trajectory's rows; the discount is applied once per step to the next row
    that exists, so a trajectory with turns (0, 1, 3) is read as three consecutive turns.
    """
    n = rewards.shape[0]
    check_rows("traj_ids", traj_ids, n)
    check_rows("turns", turns, n)
    if n == 0:
        return rewards.clone()
    order = torch.argsort(turns, stable=True)
    order = order[torch.argsort(traj_ids[order], stable=True)]
    traj_sorted, turn_sorted = traj_ids[order], turns[order]
    same_traj = traj_sorted[1:] == traj_sorted[:-1]
    if bool((same_traj & (turn_sorted[1:] == turn_sorted[:-1])).any()):
        raise ValueError("a trajectory has two rows with the same turn index")
    has_next = torch.cat([same_traj, same_traj.new_zeros(1)])
    next_pos = torch.arange(1, n + 1, device=rewards.device).clamp(max=n - 1)
    r = rewards[order]
    longest = int(torch.unique(traj_ids, return_counts=True)[1].max())
    ret = r.clone()
    for _ in range(longest - 1):  # after k sweeps the last k+1 turns of every trajectory are exact
        ret = r + gamma * torch.where(has_next, ret[next_pos], torch.zeros_like(r))
    out = torch.empty_like(ret)
    out[order] = ret
    return out


# --------------------------------------------------------------------------------------------------
# estimators


@register(ADVANTAGE_ESTIMATORS, "rloo")
def rloo(
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor | None = None,
    turns: Tensor | None = None,
    gamma: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): A_i = r_i - mean_{j != i} r_j = G/(G-1) (r_i - mean r).

    Advantages in a group sum to zero; a singleton group gets A = r.
    """
    rewards, valid = _prepare(rewards, group_ids, valid)
    r, g = _only(valid, rewards), _only(valid, group_ids)
    return _spread(valid, r - leave_one_out_baseline(r, g))


@register(ADVANTAGE_ESTIMATORS, "trloo")
def trloo(
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor | None = None,
    turns: Tensor | None = None,
    gamma: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """Turn-level RLOO (Dr. Kernel 2025): A_{i,t} = G_{i,t} - (1/(N_t - 1)) sum_{j != i} G_{j,t}.

    ``rewards`` are per-turn rewards; G is the return-to-go within the trajectory (``returns_to_go``).
    The baseline group is (task, turn index) over the turns that exist, so N_t shrinks when
    trajectories stop early; N_t = 1 gives A = G. Leaving the sample out keeps the gradient unbiased,
    where a self-inclusive mean would scale each term by (N_t - 1)/N_t and tilt its direction.
    ``traj_ids=None`` makes every row its own trajectory; with one turn this is ``rloo``.
    """
    rewards, valid = _prepare(rewards, group_ids, valid)
    n = rewards.shape[0]
    if traj_ids is None:
        traj_ids = torch.arange(n, device=rewards.device)
    elif turns is None:
        raise ValueError("trloo needs turns to order the rows of a trajectory")
    if turns is None:
        turns = torch.zeros(n, dtype=torch.long, device=rewards.device)
    check_rows("traj_ids", traj_ids, n)
    check_rows("turns", turns, n)
    r, g, tr, t = (_only(valid, x) for x in (rewards, group_ids, traj_ids, turns))
    ret = returns_to_go(r, traj_ids=tr, turns=t, gamma=gamma)
    return _spread(valid, ret - leave_one_out_baseline(ret, g, t))


trloo.reads_trajectories = True  # it forms returns-to-go from traj_ids/turns: give it per-turn rewards


@register(ADVANTAGE_ESTIMATORS, "grpo")
def grpo(
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor | None = None,
    turns: Tensor | None = None,
    gamma: float = 1.0,
    valid: Tensor | None = None,
    eps: float = 1e-6,
) -> Tensor:
    """GRPO (DeepSeekMath): A_i = (r_i - mean r) / (std r + eps), std with Bessel's correction.

    A singleton group, or one whose rewards are all equal, gets A = 0.
    """
    rewards, valid = _prepare(rewards, group_ids, valid)
    r, g = _only(valid, rewards), _only(valid, group_ids)
    total, count, index, k = _group_sum_count(r, g)
    mean = total / count
    sq = group_sum((r - mean) ** 2, index, k)[index]
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    return _spread(valid, (r - mean) / (std + eps))


@register(ADVANTAGE_ESTIMATORS, "dr_grpo")
def dr_grpo(
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor | None = None,
    turns: Tensor | None = None,
    gamma: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like training"): A_i = r_i - mean r, no std.

    Equals (G-1)/G times RLOO. The paper's other fix, a constant length normaliser, lives in the
    loss aggregation ``seq-mean-token-sum-norm``.
    """
    rewards, valid = _prepare(rewards, group_ids, valid)
    r, g = _only(valid, rewards), _only(valid, group_ids)
    total, count, _, _ = _group_sum_count(r, g)
    return _spread(valid, r - total / count)


@register(ADVANTAGE_ESTIMATORS, "global_mean")
def global_mean(
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor | None = None,
    turns: Tensor | None = None,
    gamma: float = 1.0,
    valid: Tensor | None = None,
    baseline_means: Mapping[int, float] | Tensor,
) -> Tensor:
    """Global-statistics baseline (Reinforce-Ada, Xiong et al. 2025): A_i = r_i - mean of all samples of x.

    The mean is over every sample collected for the task during adaptive sampling, not only the
    kept group. ``baseline_means`` is either a mapping group id -> mean, or a tensor [N] holding each
    row's baseline (``AdaResult.flatten`` returns one).
    """
    rewards, valid = _prepare(rewards, group_ids, valid)
    if isinstance(baseline_means, Tensor):
        check_rows("baseline_means", baseline_means, rewards.shape[0])
        baseline = baseline_means.to(rewards)
    else:
        try:
            baseline = torch.tensor([float(baseline_means[g]) for g in group_ids.tolist()], dtype=rewards.dtype)
        except KeyError as missing:
            raise KeyError(f"baseline_means has no entry for group id {missing.args[0]}") from None
        baseline = baseline.to(rewards.device)
    return _spread(valid, _only(valid, rewards) - _only(valid, baseline))


@register(ADVANTAGE_ESTIMATORS, "reinforce")
def reinforce(
    rewards: Tensor,
    *,
    group_ids: Tensor,
    traj_ids: Tensor | None = None,
    turns: Tensor | None = None,
    gamma: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """Plain REINFORCE: A_i = r_i, no baseline (unbiased, highest variance; a reference point)."""
    rewards, valid = _prepare(rewards, group_ids, valid)
    return _spread(valid, _only(valid, rewards).clone())
