import math

import pytest
import torch

from agents.algorithms import (
    mismatch_metrics,
    prs_keep_mask,
    prs_keep_probability,
    rejection_mask,
    token_veto_mask,
    truncated_importance_weights,
)


def test_prs_keep_probability_ramps_on_coverage_for_correct_turns_only():
    correct = torch.tensor([True, True, True, True, False, False])
    coverage = torch.tensor([0.1, 0.3, 0.35, 0.9, 0.0, 0.35])
    p = prs_keep_probability(correct, coverage)
    torch.testing.assert_close(p, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0, 1.0]))
    # thresholds are configurable
    p2 = prs_keep_probability(correct, coverage, low=0.1, width=0.5)
    torch.testing.assert_close(p2, torch.tensor([0.0, 0.4, 0.5, 1.0, 1.0, 1.0]))


def test_prs_keep_mask_is_seeded_and_draws_with_the_keep_probability():
    n = 20_000
    correct = torch.ones(n, dtype=torch.bool)
    correct[: n // 4] = False
    coverage = torch.full((n,), 0.35)
    a = prs_keep_mask(correct, coverage, generator=torch.Generator().manual_seed(7))
    b = prs_keep_mask(correct, coverage, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert bool(a[~correct].all())  # incorrect turns are always kept
    assert float(a[correct].float().mean()) == pytest.approx(0.5, abs=0.02)
    none = prs_keep_mask(correct, torch.full((n,), 0.2))
    assert torch.equal(none, ~correct)


# Rows are turn samples; rows 0 and 1 are two turns of one trajectory, row 2 its own.
LOGP = torch.log(torch.tensor([[0.5, 0.5, 0.9], [0.9, 0.2, 0.2], [0.3, 0.3, 0.3]], dtype=torch.float64))
MU = torch.log(torch.tensor([[0.25, 0.5, 0.9], [0.9, 0.4, 0.9], [0.3, 0.3, 0.6]], dtype=torch.float64))
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 0]], dtype=torch.bool)
TRAJ = torch.tensor([5, 5, 8])
# token ratios pi/mu: row 0: 2, 1, 1; row 1: 1, 0.5, (masked); row 2: 1, 1, (masked)
# turn ratios: 2, 0.5, 1; trajectory ratios: 1, 1, 1


def test_truncated_importance_weights_at_each_level():
    tok = truncated_importance_weights(LOGP, MU, MASK, level="token", cap=1.5)
    torch.testing.assert_close(tok, torch.tensor([[1.5, 1, 1], [1, 0.5, 1], [1, 1, 1]], dtype=torch.float64))
    turn = truncated_importance_weights(LOGP, MU, MASK, level="turn", cap=1.5)
    torch.testing.assert_close(turn, torch.tensor([[1.5] * 3, [0.5, 0.5, 1], [1, 1, 1]], dtype=torch.float64))
    traj = truncated_importance_weights(LOGP, MU, MASK, level="trajectory", traj_ids=TRAJ)
    torch.testing.assert_close(traj, torch.ones(3, 3, dtype=torch.float64))
    # without traj_ids a row is the whole sequence
    seq = truncated_importance_weights(LOGP, MU, MASK, level="trajectory", cap=2.0)
    torch.testing.assert_close(seq[:, 0], torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="level"):
        truncated_importance_weights(LOGP, MU, MASK, level="sentence")


def test_rejection_masks_use_token_ratio_or_geometric_mean():
    tok = rejection_mask(LOGP, MU, MASK, level="token", lower=0.9, upper=1.1)
    assert torch.equal(tok, torch.tensor([[False, True, True], [True, False, False], [True, True, False]]))
    # turn geometric means: row 0: 2^(1/3) = 1.26, row 1: 0.5^(1/2) = 0.71, row 2: 1
    turn = rejection_mask(LOGP, MU, MASK, level="turn", lower=0.7, upper=1.25)
    assert torch.equal(turn, torch.tensor([[False] * 3, [True, True, False], [True, True, False]]))
    # trajectory of rows 0 + 1: exp(log(2 * 0.5) / 5) = 1, kept even with tight bounds
    traj = rejection_mask(LOGP, MU, MASK, level="trajectory", traj_ids=TRAJ)
    assert torch.equal(traj, MASK)
    assert torch.equal(
        rejection_mask(LOGP, MU, MASK, level="turn"), torch.tensor([[False] * 3, [False] * 3, [True, True, False]])
    )


def test_token_veto_drops_the_whole_turn_or_trajectory():
    logp = LOGP.clone()
    logp[1, 0] = MU[1, 0] + math.log(1e-5)  # one near-impossible token in row 1
    logp[2, 2] = MU[2, 2] + math.log(1e-9)  # a padded token does not count
    by_traj = token_veto_mask(logp, MU, MASK, traj_ids=TRAJ)
    assert torch.equal(by_traj, torch.tensor([[False] * 3, [False] * 3, [True, True, False]]))
    by_turn = token_veto_mask(logp, MU, MASK, level="turn")
    assert torch.equal(by_turn, torch.tensor([[True] * 3, [False] * 3, [True, True, False]]))
    # the masks chain: the result is a subset of the mask passed in
    chained = token_veto_mask(
        logp, MU, rejection_mask(logp, MU, MASK, level="token", lower=0.9, upper=1.1), level="turn"
    )
    assert torch.equal(chained, torch.tensor([[False, True, True], [False] * 3, [True, True, False]]))


def test_mismatch_metrics():
    same = mismatch_metrics(LOGP, LOGP, MASK)
    assert float(same["mismatch_kl_k1"]) == 0 and float(same["mismatch_kl_k3"]) == 0
    assert float(same["ess_token"]) == pytest.approx(1.0) and float(same["ess_turn"]) == pytest.approx(1.0)
    out = mismatch_metrics(LOGP, MU, MASK, kept=rejection_mask(LOGP, MU, MASK, level="token", lower=0.9, upper=1.1))
    d = (LOGP - MU)[MASK]
    assert float(out["mismatch_kl_k1"]) == pytest.approx(float((-d).mean()))
    assert float(out["mismatch_kl_k3"]) == pytest.approx(float((d.exp() - 1 - d).mean()))
    w = d.exp()
    assert float(out["ess_token"]) == pytest.approx(float(w.sum() ** 2 / (len(w) * (w**2).sum())))
    w_turn = torch.tensor([2.0, 0.5, 1.0])
    assert float(out["ess_turn"]) == pytest.approx(float(w_turn.sum() ** 2 / (3 * (w_turn**2).sum())))
    assert float(out["rejected_share"]) == pytest.approx(2 / 7)
    for value in out.values():
        assert value.dim() == 0
