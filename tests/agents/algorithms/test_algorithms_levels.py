import pytest
import torch

from agents.algorithms import (
    ADVANTAGE_ESTIMATORS,
    ADVANTAGE_LEVELS,
    first_turn_mask,
    global_mean,
    rloo,
    trajectory_level,
    trloo,
    turn_level,
)

# task 0: trajectory 0 (rewards 1.0, 0.5), trajectory 1 (0.2, 0.0), trajectory 2 (0.4); task 1: trajectory 3 (0.9).
# Trajectory 0's turns come in reverse order: the levels must read the order from ``turns``, not from the rows.
# With gamma = 0.5 the returns-to-go are 1.25, 0.5 | 0.2, 0.0 | 0.4 | 0.9.
GAMMA = 0.5
ROWS = dict(
    rewards=torch.tensor([0.5, 1.0, 0.2, 0.0, 0.4, 0.9]),
    group_ids=torch.tensor([0, 0, 0, 0, 0, 1]),
    traj_ids=torch.tensor([0, 0, 1, 1, 2, 3]),
    turns=torch.tensor([1, 0, 0, 1, 0, 0]),
)


def level(name, estimator, **inputs):
    r = ROWS["rewards"]
    ids = {k: v for k, v in ROWS.items() if k != "rewards"}
    return ADVANTAGE_LEVELS[name](estimator, r, **ids, gamma=GAMMA, **inputs)


def test_levels_are_registered_and_only_trloo_reads_trajectories_itself():
    assert ADVANTAGE_LEVELS == {"turn": turn_level, "trajectory": trajectory_level}
    marked = {name for name, fn in ADVANTAGE_ESTIMATORS.items() if getattr(fn, "reads_trajectories", False)}
    assert marked == {"trloo"}


def test_turn_level_compares_each_turn_with_the_same_turn_of_its_task():
    # turn 0 of task 0: returns (1.25, 0.2, 0.4); turn 1: (0.5, 0.0); task 1 alone: A = G
    expected = torch.tensor([0.5 - 0.0, 1.25 - (0.2 + 0.4) / 2, 0.2 - (1.25 + 0.4) / 2, 0.0 - 0.5,
                             0.4 - (1.25 + 0.2) / 2, 0.9])
    assert torch.allclose(level("turn", rloo), expected)


def test_turn_level_gives_a_marked_estimator_the_rewards_and_ids_not_returns():
    # trloo forms the same (task, turn) leave-one-out on returns itself: fed returns, it would discount twice
    assert torch.allclose(level("turn", trloo), level("turn", rloo))
    seen = {}

    def spy(rewards, **kw):
        seen.update(rewards=rewards, **kw)
        return torch.zeros_like(rewards)

    spy.reads_trajectories = True
    level("turn", spy)
    assert torch.equal(seen["rewards"], ROWS["rewards"]) and seen["gamma"] == GAMMA
    assert torch.equal(seen["traj_ids"], ROWS["traj_ids"]) and torch.equal(seen["turns"], ROWS["turns"])
    seen.clear()
    del spy.reads_trajectories
    level("turn", spy)
    assert torch.allclose(seen["rewards"], torch.tensor([0.5, 1.25, 0.2, 0.0, 0.4, 0.9]))
    assert set(seen) == {"rewards", "group_ids"}  # an unmarked estimator sees returns and (task, turn) groups only


def test_trajectory_level_broadcasts_one_advantage_per_trajectory():
    # trajectory returns 1.25, 0.2, 0.4 (task 0) and 0.9 (task 1); RLOO over trajectories of a task
    per_traj = [1.25 - 0.3, 0.2 - 0.825, 0.4 - 0.725, 0.9]
    expected = torch.tensor([per_traj[k] for k in ROWS["traj_ids"].tolist()])
    assert torch.allclose(level("trajectory", rloo), expected)


def test_extra_inputs_reach_the_estimator_aligned_with_its_rows():
    baselines = torch.tensor([9.0, 0.5, 0.1, 9.0, 0.2, 0.4])  # one per row; 9 sits on later turns only
    turn = level("turn", global_mean, baseline_means=baselines)
    assert torch.allclose(turn, torch.tensor([0.5 - 9.0, 1.25 - 0.5, 0.2 - 0.1, 0.0 - 9.0, 0.4 - 0.2, 0.9 - 0.4]))
    traj = level("trajectory", global_mean, baseline_means=baselines)  # the first turn's baseline, broadcast
    assert torch.allclose(traj, torch.tensor([0.75, 0.75, 0.1, 0.1, 0.2, 0.5]))
    with pytest.raises(TypeError):
        level("turn", rloo, baseline_means=baselines)  # an estimator that takes no such input says so


def test_first_turn_mask_marks_the_earliest_turn_of_each_trajectory():
    assert first_turn_mask(ROWS["traj_ids"], ROWS["turns"]).tolist() == [False, True, True, False, True, True]
