import pytest
import torch

from agents.algorithms import global_return_baselines

# task 0: trajectory 0 (rewards 1.0, 0.5), 1 (0.2, 0.0), 2 (0.4); task 1: trajectory 3 (0.9, 0.1), 4 (0.3)
ROWS = dict(
    rewards=torch.tensor([1.0, 0.5, 0.2, 0.0, 0.4, 0.9, 0.1, 0.3], dtype=torch.float64),
    group_ids=torch.tensor([0, 0, 0, 0, 0, 1, 1, 1]),
    traj_ids=torch.tensor([0, 0, 1, 1, 2, 3, 3, 4]),
    turns=torch.tensor([0, 1, 0, 1, 0, 0, 1, 0]),
)


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_each_row_gets_the_mean_return_to_go_of_its_task_and_turn(gamma):
    g = {0: [1.0 + gamma * 0.5, 0.5], 1: [0.2 + gamma * 0.0, 0.0], 2: [0.4], 3: [0.9 + gamma * 0.1, 0.1], 4: [0.3]}
    task0_turn0 = (g[0][0] + g[1][0] + g[2][0]) / 3
    task0_turn1 = (g[0][1] + g[1][1]) / 2
    task1_turn0 = (g[3][0] + g[4][0]) / 2
    task1_turn1 = g[3][1]
    expected = [task0_turn0, task0_turn1, task0_turn0, task0_turn1, task0_turn0, task1_turn0, task1_turn1, task1_turn0]
    got = global_return_baselines(ROWS["rewards"], group_ids=ROWS["group_ids"], traj_ids=ROWS["traj_ids"],
                                  turns=ROWS["turns"], gamma=gamma)
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(expected, abs=1e-15)


def test_row_order_does_not_matter():
    perm = torch.tensor([7, 3, 0, 5, 1, 6, 2, 4])
    kw = dict(group_ids=ROWS["group_ids"], traj_ids=ROWS["traj_ids"], turns=ROWS["turns"], gamma=0.9)
    shuffled = {k: v[perm] for k, v in kw.items() if k != "gamma"}
    assert torch.allclose(global_return_baselines(ROWS["rewards"][perm], **shuffled, gamma=0.9),
                          global_return_baselines(ROWS["rewards"], **kw)[perm])
