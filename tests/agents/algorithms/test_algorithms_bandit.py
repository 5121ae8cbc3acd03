"""Monte Carlo check on a two-turn bandit with early stops: TRLOO is unbiased, a self-inclusive mean is not.

Turn 1: a1 ~ Bernoulli(sigmoid(theta1)), reward a1. The episode continues with probability 0.8 after
a1 = 1 and 0.3 after a1 = 0, so groups at turn 2 have random, unequal sizes. Turn 2:
a2 ~ Bernoulli(sigmoid(theta2)), reward 2 a2. J(theta) = E[r1 + r2] has a closed form; its gradient
is exact via autograd. The estimator is (1/G) sum_i sum_t A_{i,t} grad log pi(a_{i,t}).
"""

import torch

from agents.algorithms import dr_grpo, returns_to_go, trloo

THETA = (0.3, -0.2)
CONTINUE = (0.3, 0.8)  # P(turn 2 | a1 = 0), P(turn 2 | a1 = 1)
G = 4  # trajectories per group
K = 40_000  # groups


def exact_gradient() -> torch.Tensor:
    theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
    p1, p2 = torch.sigmoid(theta)
    q0, q1 = CONTINUE
    objective = p1 * 1.0 + (p1 * q1 + (1 - p1) * q0) * 2.0 * p2
    (grad,) = torch.autograd.grad(objective, theta)
    return grad


def sample_rows(gen: torch.Generator):
    """Flattened turn rows of K groups x G trajectories: group, traj, turn, reward, score (d log pi / d theta_t)."""
    p1, p2 = torch.sigmoid(torch.tensor(THETA, dtype=torch.float64))
    n = K * G
    a1 = (torch.rand(n, generator=gen, dtype=torch.float64) < p1).double()
    cont = torch.rand(n, generator=gen, dtype=torch.float64) < torch.where(a1 > 0, CONTINUE[1], CONTINUE[0])
    a2 = (torch.rand(n, generator=gen, dtype=torch.float64) < p2).double()
    traj = torch.arange(n)
    group = traj // G
    second = cont.nonzero().squeeze(1)
    return {
        "group": torch.cat([group, group[second]]),
        "traj": torch.cat([traj, traj[second]]),
        "turn": torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(len(second), dtype=torch.long)]),
        "reward": torch.cat([a1, 2.0 * a2[second]]),
        "score": torch.cat([a1 - p1, a2[second] - p2]),  # d/dtheta log sigmoid-Bernoulli = a - p
    }


def gradient_estimate(rows, advantages):
    """Mean over groups of the per-group estimate, and its standard error, per component of theta."""
    per_group = torch.zeros(K, 2, dtype=torch.float64)
    per_group.index_put_((rows["group"], rows["turn"]), advantages * rows["score"] / G, accumulate=True)
    return per_group.mean(0), per_group.std(0) / K**0.5


def test_trloo_gradient_is_unbiased_and_self_inclusive_mean_is_not():
    rows = sample_rows(torch.Generator().manual_seed(1234))
    exact = exact_gradient()

    a_trloo = trloo(rows["reward"], group_ids=rows["group"], traj_ids=rows["traj"], turns=rows["turn"])
    est_trloo, se_trloo = gradient_estimate(rows, a_trloo)

    # Self-inclusive baseline: the same returns, minus the mean of the (task, turn) group including itself.
    ret = returns_to_go(rows["reward"], traj_ids=rows["traj"], turns=rows["turn"])
    a_self = dr_grpo(ret, group_ids=rows["group"] * 2 + rows["turn"])
    est_self, se_self = gradient_estimate(rows, a_self)

    err_trloo = (est_trloo - exact).abs()
    err_self = (est_self - exact).abs()
    # TRLOO lands within 4 standard errors of the exact gradient on both components ...
    assert bool((err_trloo < 4 * se_trloo).all()), (est_trloo, exact, se_trloo)
    # ... the self-inclusive mean misses by over 10 standard errors and 15% relative.
    assert bool((err_self > 10 * se_self).all()), (est_self, exact, se_self)
    assert bool((err_self / exact.abs() > 0.15).all())
    # The bias is in direction, not only in scale: the ratio of the two components moves.
    exact_ratio = float(exact[1] / exact[0])
    assert abs(float(est_trloo[1] / est_trloo[0]) - exact_ratio) < 0.05
    assert abs(float(est_self[1] / est_self[0]) - exact_ratio) > 0.15
