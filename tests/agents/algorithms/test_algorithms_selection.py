import pytest
import torch

from agents.algorithms import aces_rank, aces_scores, aces_test_auc, aces_weights, best_of_turns

# 4 candidates x 3 tests (hand-computed in the comments)
PASS = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
# test 0: passes on other tests (2, 1 | 1, 0) -> pairs 1, 1, 1/2, 1 -> AUC 7/8; test 1 the same;
# test 2: passers (0: 2, 2: 0) vs failers (1: 2, 3: 0) -> 1/2, 1, 0, 1/2 -> AUC 1/2


def test_aces_auc_weights_and_scores_match_hand_values():
    torch.testing.assert_close(aces_test_auc(PASS), torch.tensor([0.875, 0.875, 0.5]))
    torch.testing.assert_close(aces_weights(PASS), torch.tensor([0.375, 0.375, 0.0]))
    torch.testing.assert_close(aces_scores(PASS), torch.tensor([0.75, 0.75, 0.0, 0.0]))
    assert aces_rank(PASS).tolist() == [0, 1, 2, 3]


def test_aces_ignores_wrong_tests_that_fool_pass_counting():
    gen = torch.Generator().manual_seed(0)
    good = torch.tensor([1] * 6 + [0] * 10, dtype=torch.bool)  # candidates 0-5 are right, 6-15 wrong
    # 8 informative tests: right candidates pass, wrong ones pass with probability 0.3 ...
    informative = good.unsqueeze(1) | (torch.rand(16, 8, generator=gen) < 0.3)
    # ... except candidate 6, a near-miss that passes all but one of them
    informative[6] = True
    informative[6, 0] = False
    # 3 wrong tests (a bad expected output): passed by exactly the wrong candidates
    wrong = (~good).unsqueeze(1).expand(16, 3)
    matrix = torch.cat([informative, wrong], 1)
    weights = aces_weights(matrix)
    assert bool((weights[:8] > 0).all())
    assert bool((weights[8:] == 0).all())
    ranking = aces_rank(matrix)
    assert set(ranking[:6].tolist()) == set(range(6))
    # plain pass counting puts the near-miss first (7 + 3 passes beat 8)
    assert int(torch.argsort(matrix.sum(1), descending=True, stable=True)[0]) == 6


def test_aces_constant_tests_are_neutral():
    matrix = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 0]])
    auc = aces_test_auc(matrix)
    assert float(auc[0]) == 0.5 and float(auc[2]) == 0.5


def test_best_of_turns_picks_the_best_valid_turn_and_breaks_ties_by_earliest():
    scores = torch.tensor([0.2, 0.9, 0.9, 0.5, 3.0, 0.1, 0.4])
    group_ids = torch.tensor([7, 7, 7, 2, 2, 5, 5])
    turns = torch.tensor([2, 1, 0, 0, 1, 0, 1])
    valid = torch.tensor([True, True, True, True, False, False, False])
    ids, best = best_of_turns(scores, group_ids=group_ids, turns=turns, valid=valid)
    assert ids.tolist() == [2, 5, 7]
    # group 2: row 4 is invalid -> row 3; group 5: nothing valid -> -1; group 7: tie 0.9 -> earliest turn (row 2)
    assert best.tolist() == [3, -1, 2]
    # without turns, ties go to the first row
    _, best_rows = best_of_turns(scores, group_ids=group_ids)
    assert best_rows.tolist() == [4, 6, 1]


def test_best_of_turns_checks_shapes():
    with pytest.raises(ValueError):
        best_of_turns(torch.zeros(3), group_ids=torch.zeros(2, dtype=torch.long))
