import math

import pytest
import torch

from agents.algorithms import AGG_MODES, POLICY_LOSSES, aggregate, kl_penalty

# A ragged batch: row 0 has 4 tokens, row 1 has 2, row 2 is padding. Masked cells hold junk.
VALUES = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 100.0, 100.0], [7.0, 7.0, 7.0, 7.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
# token-mean: 21 / 6; seq-mean-token-sum: (10 + 11) / 2; seq-mean-token-mean: (2.5 + 5.5) / 2;
# seq-mean-token-sum-norm: (10 / 4 + 11 / 4) / 2, or with constant 10: (1.0 + 1.1) / 2
EXPECTED_AGG = {
    "token-mean": 3.5,
    "seq-mean-token-sum": 10.5,
    "seq-mean-token-mean": 4.0,
    "seq-mean-token-sum-norm": 2.625,
}


def leaf(values):
    return values.clone().double().requires_grad_(True)


def grad_of(loss_name, logp, old_logp, advantages, mask, **cfg):
    logp = leaf(logp)
    loss, metrics = POLICY_LOSSES[loss_name](logp, old_logp.double(), advantages.double(), mask, **cfg)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss, grad, metrics


def test_registry_holds_every_loss():
    assert set(POLICY_LOSSES) == {"reinforce", "ppo_clip", "topr", "opmd", "asymre", "rec"}


@pytest.mark.parametrize("agg", AGG_MODES)
def test_aggregation_on_ragged_mask_matches_hand_values(agg):
    assert float(aggregate(VALUES, MASK, agg)) == pytest.approx(EXPECTED_AGG[agg])
    # the same numbers through a loss: REINFORCE with A = -1 has per-token loss = logp
    loss, _ = POLICY_LOSSES["reinforce"](VALUES, torch.zeros_like(VALUES), -torch.ones(3), MASK, agg=agg)
    assert float(loss) == pytest.approx(EXPECTED_AGG[agg])


def test_sum_norm_takes_a_constant_and_unknown_mode_fails():
    assert float(aggregate(VALUES, MASK, "seq-mean-token-sum-norm", norm_constant=10)) == pytest.approx(1.05)
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(VALUES, MASK, "token-sum")


def test_every_loss_runs_on_a_ragged_batch_and_reports_detached_metrics():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 4, generator=gen, dtype=torch.float64)
    old = logp + 0.1 * torch.randn(3, 4, generator=gen, dtype=torch.float64)
    adv = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)
    for name in POLICY_LOSSES:
        for agg in AGG_MODES:
            loss, grad, metrics = grad_of(name, logp, old, adv, MASK, agg=agg)
            assert loss.dim() == 0 and torch.isfinite(loss), name
            assert bool((grad[~MASK] == 0).all()), f"{name}: padding got a gradient"
            assert {"ratio_mean", "approx_kl"} <= set(metrics)
            for key, value in metrics.items():
                assert value.dim() == 0 and not value.requires_grad, (name, key)


# --------------------------------------------------------------------------------------------------
# PPO clip


def test_ppo_clip_gradient_is_zero_outside_the_clip_region():
    # one token per row; ratio = exp(logp - 0)
    ratios = torch.tensor([1.5, 1.1, 0.5, 0.5, 0.9, 1.5, 2.0, 4.0], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    # A > 0: clipped above 1 + 0.28, free below; A < 0: clipped below 1 - 0.2, free above up to c = 3
    clipped = torch.tensor([True, False, False, True, False, False, False, True])
    logp = torch.log(ratios).unsqueeze(1)
    mask = torch.ones_like(logp, dtype=torch.bool)
    _, grad, metrics = grad_of("ppo_clip", logp, torch.zeros_like(logp), adv, mask, clip_low=0.2, clip_high=0.28)
    grad = grad.squeeze(1)
    assert bool((grad[clipped] == 0).all())
    # inside: d(-A rho)/d log pi = -A rho, averaged over 8 tokens
    torch.testing.assert_close(grad[~clipped], (-adv * ratios / 8)[~clipped])
    assert float(metrics["clip_fraction"]) == pytest.approx(2 / 8)
    assert float(metrics["dual_clip_fraction"]) == pytest.approx(1 / 8)


def test_ppo_clip_without_dual_clip_keeps_pushing_large_negative_ratios():
    logp = torch.log(torch.tensor([[4.0]], dtype=torch.float64))
    _, grad, _ = grad_of(
        "ppo_clip", logp, torch.zeros_like(logp), torch.tensor([-1.0]), torch.ones(1, 1), dual_clip=None
    )
    assert float(grad) == pytest.approx(4.0)


# --------------------------------------------------------------------------------------------------
# TOPR


def topr_alpha(grad, adv, mask):
    """Recover alpha from d loss / d logp = -alpha A m / n_tokens (token-mean)."""
    return -grad * mask.sum() / adv.unsqueeze(1)


def test_topr_weights_are_one_on_positives_and_tapered_on_negatives():
    gen = torch.Generator().manual_seed(1)
    b, t = 12, 5
    logp = -torch.rand(b, t, generator=gen, dtype=torch.float64)
    mu = logp + 0.4 * torch.randn(b, t, generator=gen, dtype=torch.float64)  # ratios both sides of 1
    adv = torch.tensor([1.0, 0.5, 2.0, 0.1, 0.0, 3.0, -1.0, -0.5, -2.0, -0.1, -1.5, -0.7], dtype=torch.float64)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[3, 2:] = False
    mask[8, 1:] = False
    mask[4, 0] = True
    nonzero = adv != 0

    _, grad, _ = grad_of("topr", logp, torch.zeros_like(logp), adv, mask, behavior_logp=mu)
    alpha = topr_alpha(grad, adv, mask)
    positive = (adv > 0).unsqueeze(1) & mask
    negative = (adv < 0).unsqueeze(1) & mask
    torch.testing.assert_close(alpha[positive], torch.ones(int(positive.sum()), dtype=torch.float64))
    assert bool(((alpha[negative] >= 0) & (alpha[negative] <= 1)).all())
    # trajectory-level: alpha = min(1, pi(tau) / mu(tau)), constant along the row
    seq_ratio = torch.exp(((logp - mu) * mask).sum(1))
    expected = torch.where(adv < 0, seq_ratio.clamp(max=1), torch.ones_like(seq_ratio)).unsqueeze(1).expand(b, t)
    torch.testing.assert_close(alpha[mask & nonzero.unsqueeze(1)], expected[mask & nonzero.unsqueeze(1)])
    assert 0 < int((seq_ratio[adv < 0] < 1).sum()) < int((adv < 0).sum())  # both taper and cap were exercised

    # per-token variant
    _, grad_tok, _ = grad_of("topr", logp, torch.zeros_like(logp), adv, mask, behavior_logp=mu, ratio_level="token")
    alpha_tok = topr_alpha(grad_tok, adv, mask)
    expected_tok = torch.where((adv < 0).unsqueeze(1), torch.exp(logp - mu).clamp(max=1), torch.ones_like(logp))
    torch.testing.assert_close(alpha_tok[mask & nonzero.unsqueeze(1)], expected_tok[mask & nonzero.unsqueeze(1)])


def test_topr_pools_the_ratio_over_a_trajectory_and_defaults_mu_to_old_logp():
    logp = torch.log(torch.tensor([[0.5], [0.8], [0.5]], dtype=torch.float64))
    adv = -torch.ones(3, dtype=torch.float64)
    mask = torch.ones(3, 1, dtype=torch.bool)
    old = torch.zeros_like(logp)
    _, grad, _ = grad_of("topr", logp, old, adv, mask, traj_ids=torch.tensor([7, 7, 9]))
    alpha = topr_alpha(grad, adv, mask).squeeze(1)
    torch.testing.assert_close(alpha, torch.tensor([0.4, 0.4, 0.5], dtype=torch.float64))


# --------------------------------------------------------------------------------------------------
# OPMD, AsymRE, REC, REINFORCE


def test_opmd_gradient_adds_the_mirror_descent_pull():
    logp = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    old = torch.tensor([[-1.5, -1.0]], dtype=torch.float64)
    _, grad, _ = grad_of("opmd", logp, old, torch.tensor([2.0]), torch.ones(1, 2), tau=0.5)
    # d/dlogp [-A logp + tau (logp - old)^2] = -A + 2 tau (logp - old), over 2 tokens
    torch.testing.assert_close(grad, torch.tensor([[(-2.0 + 0.5) / 2, (-2.0 - 1.0) / 2]], dtype=torch.float64))


def test_asymre_shifts_the_baseline_below_the_mean():
    logp = torch.zeros(2, 1, dtype=torch.float64)
    _, grad, _ = grad_of("asymre", logp, logp, torch.tensor([0.0, -0.05]), torch.ones(2, 1), delta=-0.1)
    torch.testing.assert_close(grad.squeeze(1), torch.tensor([-0.1 / 2, -0.05 / 2], dtype=torch.float64))


@pytest.mark.parametrize(
    "mask_mode, kept",
    [
        ("one-side", [True, False, False, True, True, True]),
        ("two-side", [False, False, False, False, True, True]),
        ("none", [True] * 6),
    ],
)
def test_rec_masks(mask_mode, kept):
    ratios = torch.tensor([0.5, 1.5, 0.5, 1.5, 1.0, 1.0], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    logp = torch.log(ratios).unsqueeze(1)
    mask = torch.ones_like(logp, dtype=torch.bool)
    kept = torch.tensor(kept)
    for weight, w in (("one", torch.ones_like(ratios)), ("ratio", ratios)):
        _, grad, metrics = grad_of("rec", logp, torch.zeros_like(logp), adv, mask, mask_mode=mask_mode, weight=weight)
        expected = torch.where(kept, -adv * w / 6, torch.zeros_like(w))
        torch.testing.assert_close(grad.squeeze(1), expected)
        assert float(metrics["rec_dropped_fraction"]) == pytest.approx(float((~kept).double().mean()))


def test_token_weights_scale_the_policy_gradient():
    logp = torch.zeros(1, 3, dtype=torch.float64)
    weights = torch.tensor([[2.0, 0.5, 1.0]], dtype=torch.float64)
    _, grad, _ = grad_of("reinforce", logp, logp, torch.tensor([1.0]), torch.ones(1, 3), token_weights=weights)
    torch.testing.assert_close(grad, -weights / 3)


# --------------------------------------------------------------------------------------------------
# KL


def test_kl_estimators():
    logp = torch.log(torch.tensor([0.5, 0.2], dtype=torch.float64))
    ref = torch.log(torch.tensor([0.25, 0.4], dtype=torch.float64))
    d = logp - ref
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), d)
    torch.testing.assert_close(kl_penalty(logp, ref, "k2"), 0.5 * d**2)
    k3 = kl_penalty(logp, ref, "k3")
    torch.testing.assert_close(k3, torch.tensor([0.5 - 1 + math.log(2), 2 - 1 - math.log(2)], dtype=torch.float64))
    assert bool((k3 >= 0).all())
    # k1 and k3 are unbiased for KL(p || q) when sampled from p
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    kl = float((p * (p / q).log()).sum())
    for kind in ("k1", "k3"):
        assert float((p * kl_penalty(p.log(), q.log(), kind)).sum()) == pytest.approx(kl)
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k4")


def test_kl_coefficient_adds_the_penalty_to_the_loss():
    logp = torch.log(torch.tensor([[0.5, 0.2]], dtype=torch.float64))
    ref = torch.log(torch.tensor([[0.25, 0.4]], dtype=torch.float64))
    adv = torch.tensor([0.0])
    mask = torch.ones(1, 2)
    loss, metrics = POLICY_LOSSES["reinforce"](logp, logp, adv, mask, ref_logp=ref, kl_coef=0.1, kl_kind="k2")
    assert float(loss) == pytest.approx(0.1 * float(kl_penalty(logp, ref, "k2").mean()))
    assert "kl_ref" in metrics
    with pytest.raises(ValueError, match="ref_logp"):
        POLICY_LOSSES["reinforce"](logp, logp, adv, mask, kl_coef=0.1)
    with pytest.raises(TypeError):
        POLICY_LOSSES["ppo_clip"](logp, logp, adv, mask, clip_ratio=0.2)
