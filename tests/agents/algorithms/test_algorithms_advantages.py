import pytest
import torch

from agents.algorithms import (
    ADVANTAGE_ESTIMATORS,
    dr_grpo,
    global_mean,
    grpo,
    leave_one_out_baseline,
    returns_to_go,
    rloo,
    trloo,
)


def random_groups(seed: int, sizes=(2, 3, 5, 8, 4)):
    """Rewards with arbitrary (sparse, negative, unsorted) group ids, rows shuffled."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor([1000, -5, 7, 42, 3])[: len(sizes)]
    group_ids = torch.cat([torch.full((s,), int(i)) for i, s in zip(ids, sizes)])
    perm = torch.randperm(len(group_ids), generator=gen)
    rewards = torch.rand(len(group_ids), generator=gen, dtype=torch.float64)
    return rewards, group_ids[perm]


def per_group(values, group_ids):
    return {int(g): values[group_ids == g] for g in torch.unique(group_ids)}


def test_registry_holds_every_estimator_and_one_signature_fits_all():
    assert set(ADVANTAGE_ESTIMATORS) == {"rloo", "trloo", "grpo", "dr_grpo", "global_mean", "reinforce"}
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25])
    common = {
        "group_ids": torch.tensor([0, 0, 1, 1]),
        "traj_ids": torch.tensor([0, 1, 2, 3]),
        "turns": torch.tensor([0, 0, 0, 0]),
        "gamma": 1.0,
    }
    for name, fn in ADVANTAGE_ESTIMATORS.items():
        extra = {"baseline_means": {0: 0.5, 1: 0.0}} if name == "global_mean" else {}
        out = fn(rewards, **common, **extra)
        assert out.shape == rewards.shape, name
        assert not out.requires_grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rloo_sums_to_zero_and_is_scaled_mean_difference(seed):
    rewards, group_ids = random_groups(seed)
    adv = rloo(rewards, group_ids=group_ids)
    for g, a in per_group(adv, group_ids).items():
        r = rewards[group_ids == g]
        size = len(r)
        assert abs(float(a.sum())) < 1e-12
        torch.testing.assert_close(a, size / (size - 1) * (r - r.mean()))
        # and the definition itself: r_i minus the mean of the others
        loo = torch.stack([torch.cat([r[:i], r[i + 1 :]]).mean() for i in range(size)])
        torch.testing.assert_close(a, r - loo)


def test_rloo_singleton_group_keeps_the_reward():
    rewards = torch.tensor([0.3, 1.0, 0.0])
    adv = rloo(rewards, group_ids=torch.tensor([5, 9, 9]))
    torch.testing.assert_close(adv, torch.tensor([0.3, 1.0, -1.0]))


@pytest.mark.parametrize("seed", [0, 1])
def test_dr_grpo_is_scaled_rloo(seed):
    rewards, group_ids = random_groups(seed)
    sizes = torch.stack([(group_ids == g).sum() for g in group_ids]).to(rewards.dtype)
    torch.testing.assert_close(
        dr_grpo(rewards, group_ids=group_ids), (sizes - 1) / sizes * rloo(rewards, group_ids=group_ids)
    )


def test_grpo_normalises_by_group_std():
    rewards, group_ids = random_groups(3)
    adv = grpo(rewards, group_ids=group_ids, eps=0.0)
    for g, a in per_group(adv, group_ids).items():
        r = rewards[group_ids == g]
        torch.testing.assert_close(a, (r - r.mean()) / r.std())
    # invariant to a positive affine change of the rewards
    torch.testing.assert_close(grpo(3 * rewards + 1, group_ids=group_ids, eps=0.0), adv)
    # a group with equal rewards, and a singleton, give 0 rather than nan
    out = grpo(torch.tensor([1.0, 1.0, 0.7]), group_ids=torch.tensor([0, 0, 1]))
    torch.testing.assert_close(out, torch.zeros(3))


@pytest.mark.parametrize("seed", [0, 1])
def test_trloo_with_one_turn_is_rloo(seed):
    rewards, group_ids = random_groups(seed)
    expected = rloo(rewards, group_ids=group_ids)
    torch.testing.assert_close(trloo(rewards, group_ids=group_ids), expected)
    n = len(rewards)
    explicit = trloo(rewards, group_ids=group_ids, traj_ids=torch.arange(n) * 7, turns=torch.zeros(n, dtype=torch.long))
    torch.testing.assert_close(explicit, expected)


# Two tasks, ragged trajectories (the first stops after 3 turns, others after 2 or 1).
# rows: (group, traj, turn, reward)
RAGGED = [
    (10, 0, 0, 0.0),
    (10, 0, 1, 0.5),
    (10, 0, 2, 1.0),
    (10, 1, 0, 0.2),
    (10, 1, 1, 0.0),
    (10, 2, 0, 1.0),
    (20, 3, 0, 1.0),
    (20, 3, 1, 1.0),
    (20, 4, 0, 0.0),
]
# gamma = 1: returns traj0 (1.5, 1.5, 1.0), traj1 (0.2, 0.0), traj2 (1.0), traj3 (2.0, 1.0), traj4 (0.0)
#   task 10, turn 0: G = (1.5, 0.2, 1.0) -> 1.5 - 0.6 = 0.9, 0.2 - 1.25 = -1.05, 1.0 - 0.85 = 0.15
#   task 10, turn 1: G = (1.5, 0.0) -> 1.5, -1.5;  turn 2: alone -> 1.0
#   task 20, turn 0: G = (2.0, 0.0) -> 2.0, -2.0;  turn 1: alone -> 1.0
RAGGED_A_GAMMA_1 = [0.9, 1.5, 1.0, -1.05, -1.5, 0.15, 2.0, 1.0, -2.0]
# gamma = 0.5: traj0 returns (0.5, 1.0, 1.0), traj1 (0.2, 0.0), traj3 (1.5, 1.0)
#   task 10, turn 0: G = (0.5, 0.2, 1.0) -> -0.1, -0.55, 0.65;  turn 1: (1.0, 0.0) -> 1.0, -1.0
RAGGED_A_GAMMA_HALF = [-0.1, 1.0, 1.0, -0.55, -1.0, 0.65, 1.5, 1.0, -1.5]


def ragged_tensors(perm):
    cols = [torch.tensor([row[c] for row in RAGGED]) for c in range(4)]
    return [c[perm] for c in cols]


@pytest.mark.parametrize("gamma, expected", [(1.0, RAGGED_A_GAMMA_1), (0.5, RAGGED_A_GAMMA_HALF)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trloo_on_ragged_trajectories_matches_hand_table(gamma, expected, seed):
    perm = torch.randperm(len(RAGGED), generator=torch.Generator().manual_seed(seed))
    group_ids, traj_ids, turns, rewards = ragged_tensors(perm)
    adv = trloo(rewards.double(), group_ids=group_ids, traj_ids=traj_ids, turns=turns, gamma=gamma)
    torch.testing.assert_close(adv, torch.tensor(expected, dtype=torch.float64)[perm])


def test_trloo_ignores_padding_rows():
    group_ids, traj_ids, turns, rewards = ragged_tensors(torch.arange(len(RAGGED)))
    # append padding: a fake later turn of traj 0 and a fake trajectory in task 20, with junk rewards
    group_ids = torch.cat([group_ids, torch.tensor([10, 20])])
    traj_ids = torch.cat([traj_ids, torch.tensor([0, 9])])
    turns = torch.cat([turns, torch.tensor([3, 0])])
    rewards = torch.cat([rewards, torch.tensor([100.0, -100.0])]).double()
    valid = torch.tensor([True] * len(RAGGED) + [False, False])
    adv = trloo(rewards, group_ids=group_ids, traj_ids=traj_ids, turns=turns, valid=valid)
    expected = torch.tensor(RAGGED_A_GAMMA_1 + [0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(adv, expected)


def test_valid_mask_excludes_rows_from_group_statistics():
    rewards = torch.tensor([1.0, 0.0, 5.0, 0.5])
    group_ids = torch.tensor([0, 0, 0, 0])
    valid = torch.tensor([True, True, False, True])
    for name in ("rloo", "grpo", "dr_grpo", "reinforce"):
        fn = ADVANTAGE_ESTIMATORS[name]
        masked = fn(rewards, group_ids=group_ids, valid=valid)
        dropped = fn(rewards[valid], group_ids=group_ids[valid])
        assert masked[2] == 0, name
        torch.testing.assert_close(masked[valid], dropped)


def test_returns_to_go_orders_by_turn_and_rejects_duplicate_turns():
    rewards = torch.tensor([3.0, 1.0, 2.0])
    traj_ids = torch.tensor([0, 0, 0])
    ret = returns_to_go(rewards, traj_ids=traj_ids, turns=torch.tensor([2, 0, 1]), gamma=0.5)
    # turn order: 1.0, 2.0, 3.0 -> G = (1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3)
    torch.testing.assert_close(ret, torch.tensor([3.0, 2.75, 3.5]))
    with pytest.raises(ValueError, match="same turn"):
        returns_to_go(rewards, traj_ids=traj_ids, turns=torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="turns"):
        trloo(rewards, group_ids=torch.zeros(3, dtype=torch.long), traj_ids=traj_ids)


def test_leave_one_out_baseline_over_a_tuple_key():
    values = torch.tensor([1.0, 3.0, 5.0, 7.0])
    base = leave_one_out_baseline(values, torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 0]))
    torch.testing.assert_close(base, torch.tensor([3.0, 1.0, 0.0, 0.0]))


def test_global_mean_uses_the_given_baseline():
    rewards = torch.tensor([1.0, 0.0, 1.0])
    group_ids = torch.tensor([4, 4, 8])
    by_map = global_mean(rewards, group_ids=group_ids, baseline_means={4: 0.25, 8: 0.9})
    torch.testing.assert_close(by_map, torch.tensor([0.75, -0.25, 0.1]))
    by_tensor = global_mean(rewards, group_ids=group_ids, baseline_means=torch.tensor([0.25, 0.25, 0.9]))
    torch.testing.assert_close(by_tensor, by_map)
    with pytest.raises(KeyError, match="8"):
        global_mean(rewards, group_ids=group_ids, baseline_means={4: 0.25})


def test_reinforce_is_the_reward_and_unknown_options_fail():
    rewards = torch.tensor([0.2, 0.9])
    adv = ADVANTAGE_ESTIMATORS["reinforce"](rewards, group_ids=torch.tensor([0, 0]))
    torch.testing.assert_close(adv, rewards)
    with pytest.raises(TypeError):
        rloo(rewards, group_ids=torch.tensor([0, 0]), epsilon=1.0)
