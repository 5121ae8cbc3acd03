"""Policy losses: a per-token loss, optional weights and KL penalty, then one aggregation.

Every loss in ``POLICY_LOSSES`` has the signature::

    fn(logp[B, T], old_logp[B, T], advantages[B], mask[B, T], *, behavior_logp[B, T] | None = None,
       agg="token-mean", **options) -> (loss, metrics)

- ``logp``: trainer log-probs of the sampled tokens (with grad); ``old_logp``: the same under the
  policy that sampled (pi_old, no grad); ``behavior_logp``: the sampler's own log-probs (mu), read by
  ``topr`` only. Mismatch correction for the other losses enters through ``token_weights``
  (see ``filters.truncated_importance_weights``) and the mask (``filters.rejection_mask``).
- ``advantages[B]`` is broadcast over the tokens of its row and never differentiated.
- ``mask`` may be ragged (padding zeros; bool or 0/1 float).
- Options every loss takes: ``token_weights`` [B, T] (detached multipliers of the policy term),
  ``ref_logp`` + ``kl_coef`` + ``kl_kind`` (a KL penalty to a reference policy, see ``kl_penalty``),
  ``norm_constant`` (for ``seq-mean-token-sum-norm``), ``agg_denominator`` (for a part of a batch: the
  whole batch's ``agg_denominator(mask, agg)``, so the parts' losses add up to the batch's). Unknown
  options raise ``TypeError``.
- ``metrics`` holds 0-dim detached tensors: always ``ratio_mean`` (pi/pi_old) and ``approx_kl``
  (k3 estimate of KL(pi_old || pi)), plus loss-specific ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._groups import dense_ids, group_sum, register

LossFn = Callable[..., tuple[Tensor, dict[str, Tensor]]]
POLICY_LOSSES: dict[str, LossFn] = {}
AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
_MAX_LOG_RATIO = 20.0  # exp(20) ~ 5e8: keeps ratios finite without touching any sane value


# --------------------------------------------------------------------------------------------------
# aggregation and shared helpers


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is set (0 when none is)."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1)


def agg_denominator(mask: Tensor, agg: str = "token-mean") -> float:
    """What ``aggregate`` divides by: the unmasked tokens (``token-mean``) or the sequences with at
    least one (the seq-mean modes); at least 1."""
    if agg not in AGG_MODES:
        raise ValueError(f"unknown aggregation {agg!r}; expected one of {AGG_MODES}")
    m = mask.bool()
    return float(max(int(m.sum() if agg == "token-mean" else m.any(-1).sum()), 1))


def aggregate(
    per_token: Tensor, mask: Tensor, agg: str = "token-mean", *, norm_constant: float | None = None,
    denominator: float | None = None,
) -> Tensor:
    """Reduce a [B, T] per-token loss to a scalar.

    - ``token-mean``: sum over all unmasked tokens / their number (long answers weigh more).
    - ``seq-mean-token-sum`` (Dr. Kernel): mean over sequences of each sequence's token sum.
    - ``seq-mean-token-mean``: mean over sequences of each sequence's token mean (GRPO's original).
    - ``seq-mean-token-sum-norm`` (Dr. GRPO): each sequence's token sum / a constant
      (``norm_constant``, default T = mask.shape[1]), averaged over sequences.
    The seq-mean modes average over sequences with at least one unmasked token; fully padded rows
    do not count. ``denominator`` replaces that count (tokens or sequences) with a larger batch's, so
    that micro-batches of it sum to its loss whatever their sizes and masks.
    """
    m = mask.to(per_token.dtype)
    masked = per_token * m
    n = agg_denominator(mask, agg) if denominator is None else float(denominator)
    if agg == "token-mean":
        return masked.sum() / n
    seq_sum, seq_len = masked.sum(-1), m.sum(-1)
    if agg == "seq-mean-token-sum":
        per_seq = seq_sum
    elif agg == "seq-mean-token-mean":
        per_seq = seq_sum / seq_len.clamp(min=1)
    elif agg == "seq-mean-token-sum-norm":
        per_seq = seq_sum / float(norm_constant if norm_constant is not None else mask.shape[-1])
    return per_seq.sum() / n


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: str = "k3") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (k1, k2, k3), d = log pi - log pi_ref.

    k1 = d (unbiased, can be negative); k2 = d^2 / 2 (low variance, biased); k3 = exp(-d) - 1 + d
    (unbiased, non-negative).
    """
    d = (logp - ref_logp).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d**2
    if kind == "k3":
        return torch.exp(-d) - 1 + d
    raise ValueError(f"unknown KL estimator {kind!r}; expected k1, k2 or k3")


def _log_ratio(logp: Tensor, old_logp: Tensor) -> Tensor:
    return (logp - old_logp.detach()).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)


def _finish(
    per_token: Tensor,
    logp: Tensor,
    old_logp: Tensor,
    mask: Tensor,
    agg: str,
    metrics: dict[str, Tensor],
    *,
    token_weights: Tensor | None = None,
    ref_logp: Tensor | None = None,
    kl_coef: float = 0.0,
    kl_kind: str = "k3",
    norm_constant: float | None = None,
    agg_denominator: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weights, KL penalty, aggregation and the metrics every loss reports."""
    if token_weights is not None:
        per_token = per_token * token_weights.detach()
    if kl_coef:
        if ref_logp is None:
            raise ValueError("kl_coef needs ref_logp")
        kl = kl_penalty(logp, ref_logp.detach(), kl_kind)
        per_token = per_token + kl_coef * kl
        metrics["kl_ref"] = masked_mean(kl.detach(), mask)
    log_ratio = _log_ratio(logp, old_logp).detach()
    ratio = torch.exp(log_ratio)
    metrics["ratio_mean"] = masked_mean(ratio, mask)
    metrics["approx_kl"] = masked_mean(ratio - 1 - log_ratio, mask)
    return aggregate(per_token, mask, agg, norm_constant=norm_constant, denominator=agg_denominator), metrics


def _row_advantages(advantages: Tensor, logp: Tensor) -> Tensor:
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must have shape ({logp.shape[0]},), got {tuple(advantages.shape)}")
    return advantages.detach().to(logp.dtype).unsqueeze(-1)


# --------------------------------------------------------------------------------------------------
# losses


@register(POLICY_LOSSES, "reinforce")
def reinforce(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    behavior_logp: Tensor | None = None,
    agg: str = "token-mean",
    **common,
) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE: loss = -A log pi per token. On-policy; no ratio, no clip."""
    adv = _row_advantages(advantages, logp)
    return _finish(-adv * logp, logp, old_logp, mask, agg, {}, **common)


@register(POLICY_LOSSES, "ppo_clip")
def ppo_clip(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    behavior_logp: Tensor | None = None,
    agg: str = "token-mean",
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = 3.0,
    **common,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate with asymmetric clip and dual clip (defaults from Dr. Kernel: 0.2 / 0.28).

    l = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high)); for A < 0 also l = min(l, -c A), c =
    ``dual_clip`` (None disables it). The gradient is zero once the ratio leaves the trust region in
    the direction the advantage pushes it.
    """
    adv = _row_advantages(advantages, logp)
    ratio = torch.exp(_log_ratio(logp, old_logp))
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    metrics = {"clip_fraction": masked_mean((clipped > unclipped).to(logp.dtype).detach(), mask)}
    if dual_clip is not None:
        if dual_clip <= 1:
            raise ValueError("dual_clip must be > 1")
        floor = -dual_clip * adv
        dual_active = (adv < 0) & (per_token > floor)
        per_token = torch.where(adv < 0, torch.minimum(per_token, floor), per_token)
        metrics["dual_clip_fraction"] = masked_mean(dual_active.to(logp.dtype).detach(), mask)
    return _finish(per_token, logp, old_logp, mask, agg, metrics, **common)


@register(POLICY_LOSSES, "topr")
def topr(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    behavior_logp: Tensor | None = None,
    agg: str = "token-mean",
    ratio_level: str = "trajectory",
    traj_ids: Tensor | None = None,
    traj_log_ratio_rest: Tensor | None = None,
    **common,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Tapered Off-Policy REINFORCE (Le Roux et al. 2025): loss = -sg(alpha) A log pi.

    alpha = 1 when A >= 0 (positives learn like SFT) and alpha = clip(pi/mu, 0, 1) when A < 0, so the
    push on a negative fades once its probability has dropped; no KL term is needed. mu is
    ``behavior_logp`` (``old_logp`` when None). ``ratio_level="trajectory"`` uses pi(tau)/mu(tau),
    summed in log space over the row, or over all rows sharing ``traj_ids`` when given, or the row's
    own sum plus ``traj_log_ratio_rest`` [B] (the rest of its trajectory, computed where all of it is
    at hand: a micro-batch may hold only some of a trajectory's turns); ``"token"`` uses each token's
    own ratio.
    """
    adv = _row_advantages(advantages, logp)
    mu = old_logp if behavior_logp is None else behavior_logp
    log_ratio = (logp.detach() - mu.detach()) * mask.to(logp.dtype)
    if ratio_level == "trajectory":
        log_ratio = log_ratio.sum(-1)
        if traj_log_ratio_rest is not None:
            log_ratio = log_ratio + traj_log_ratio_rest.detach().to(log_ratio)
        elif traj_ids is not None:
            index, k = dense_ids(traj_ids)
            log_ratio = group_sum(log_ratio, index, k)[index]
        log_ratio = log_ratio.unsqueeze(-1)
    elif ratio_level != "token":
        raise ValueError(f"unknown ratio_level {ratio_level!r}; expected 'trajectory' or 'token'")
    taper = torch.exp(log_ratio.clamp(max=0))  # clip(pi/mu, 0, 1) computed without overflow
    alpha = torch.where(adv >= 0, torch.ones_like(taper), taper).expand_as(logp)
    negative = (adv < 0).expand_as(logp)
    metrics = {"alpha_negative_mean": masked_mean(alpha, mask.bool() & negative)}
    return _finish(-alpha * adv * logp, logp, old_logp, mask, agg, metrics, **common)


def rest_of_trajectory(logp: Tensor, behavior_logp: Tensor, mask: Tensor, traj_ids: Tensor) -> Tensor:
    """Per row, log pi/mu summed over the other turns of its trajectory ([B]): ``topr``'s
    ``traj_log_ratio_rest``, computed once where every turn is at hand (under pi_old). Exact at a
    batch's first optimizer step; later steps keep the other turns at pi_old, so the ratio does not
    depend on how rows fall into micro-batches."""
    per_row = ((logp - behavior_logp) * mask.to(logp.dtype)).sum(-1)
    index, k = dense_ids(traj_ids)
    return group_sum(per_row, index, k)[index] - per_row


@register(POLICY_LOSSES, "opmd")
def opmd(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    behavior_logp: Tensor | None = None,
    agg: str = "token-mean",
    tau: float = 0.1,
    **common,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Online policy mirror descent (Kimi k1.5): loss = -A log pi + tau (log pi - log pi_old)^2.

    The squared log-ratio is the mirror-descent regulariser that keeps pi near pi_old.
    """
    adv = _row_advantages(advantages, logp)
    per_token = -adv * logp + tau * (logp - old_logp.detach()) ** 2
    return _finish(per_token, logp, old_logp, mask, agg, {}, **common)


@register(POLICY_LOSSES, "asymre")
def asymre(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    behavior_logp: Tensor | None = None,
    agg: str = "token-mean",
    delta: float = -0.1,
    **common,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Asymmetric REINFORCE (Arnal et al. 2025): REINFORCE with baseline mean + delta, delta < 0.

    Expects ``advantages`` = r - mean (``dr_grpo`` or ``global_mean``); loss = -(A - delta) log pi, so a
    baseline below the mean leans on positives, which keeps off-policy training stable.
    """
    adv = _row_advantages(advantages, logp) - delta
    return _finish(-adv * logp, logp, old_logp, mask, agg, {}, **common)


@register(POLICY_LOSSES, "rec")
def rec(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    behavior_logp: Tensor | None = None,
    agg: str = "token-mean",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    mask_mode: str = "one-side",
    weight: str = "one",
    **common,
) -> tuple[Tensor, dict[str, Tensor]]:
    """REC (Yao et al. 2025, "Group-relative REINFORCE is secretly an off-policy algorithm"): -w A log pi on kept tokens.

    ``mask_mode``: "one-side" keeps tokens with (A >= 0 and rho <= 1 + clip_high) or (A <= 0 and
    rho >= 1 - clip_low); "two-side" keeps 1 - clip_low <= rho <= 1 + clip_high; "none" keeps all.
    ``weight``: "one" (w = 1, loss -A log pi) or "ratio" (w = rho, loss -A rho, gradient -A rho grad log pi).
    Dropped tokens still count in the aggregation's denominator, as clipped tokens do in PPO.
    """
    adv = _row_advantages(advantages, logp)
    ratio = torch.exp(_log_ratio(logp, old_logp))
    r = ratio.detach()
    if mask_mode == "one-side":
        keep = ((adv >= 0) & (r <= 1 + clip_high)) | ((adv <= 0) & (r >= 1 - clip_low))
    elif mask_mode == "two-side":
        keep = (r >= 1 - clip_low) & (r <= 1 + clip_high)
    elif mask_mode == "none":
        keep = torch.ones_like(r, dtype=torch.bool)
    else:
        raise ValueError(f"unknown mask_mode {mask_mode!r}; expected 'one-side', 'two-side' or 'none'")
    if weight == "one":
        per_token = -adv * logp
    elif weight == "ratio":
        per_token = -adv * ratio
    else:
        raise ValueError(f"unknown weight {weight!r}; expected 'one' or 'ratio'")
    per_token = per_token * keep.to(logp.dtype)
    metrics = {"rec_dropped_fraction": masked_mean((~keep).to(logp.dtype), mask)}
    return _finish(per_token, logp, old_logp, mask, agg, metrics, **common)
