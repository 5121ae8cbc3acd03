"""Sample filters: which turns and tokens reach the gradient, and with what weight.

Two families:

- Profiling-based rejection sampling (PRS, Dr. Kernel 2025): drop correct-but-lazy turns, whose
  custom kernels cover little of the runtime. The keep mask is applied to the *loss* mask only: a
  rejected turn gets no gradient but still counts in its group's baseline, so compute advantages on
  all turns first, then multiply the loss mask by the PRS mask.
- Sampler/trainer mismatch correction: the sampler (mu, e.g. an inference engine) and the trainer
  (pi) disagree slightly on log-probs. Truncated importance weights reweight the loss
  (``token_weights`` of any policy loss); rejection masks and the token veto shrink the loss mask.

Layout of the mismatch inputs: rows are turn samples, ``logp`` / ``behavior_logp`` / ``mask`` are
[B, T]. Levels: ``"token"`` (each token), ``"turn"`` (a row), ``"trajectory"`` (all rows sharing
``traj_ids``; without ``traj_ids`` a row is its own trajectory, i.e. the whole sequence). Mask
functions return the new loss mask, a subset of ``mask``, so they chain:
``mask = token_veto_mask(logp, mu, rejection_mask(logp, mu, mask))``. Nothing here is differentiated.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._groups import dense_ids, group_sum

LEVELS = ("token", "turn", "trajectory")


# --------------------------------------------------------------------------------------------------
# profiling-based rejection sampling


def prs_keep_probability(correct: Tensor, coverage: Tensor, *, low: float = 0.3, width: float = 0.1) -> Tensor:
    """P(keep) = clip((coverage - low) / width, 0, 1) for a correct turn, 1 for an incorrect one (Dr. Kernel PRS).

    ``coverage`` is the profiled share of runtime spent in the turn's own kernels, in [0, 1].
    """
    ramp = ((coverage.to(torch.get_default_dtype()) - low) / width).clamp(0, 1)
    return torch.where(correct.bool(), ramp, torch.ones_like(ramp))


def prs_keep_mask(
    correct: Tensor,
    coverage: Tensor,
    *,
    low: float = 0.3,
    width: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Bool [N]: draw each turn's keep decision with ``prs_keep_probability`` (seeded by ``generator``).

    Apply it to the loss mask, not to the advantage computation (see the module docstring).
    """
    p = prs_keep_probability(correct, coverage, low=low, width=width)
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return u < p


# --------------------------------------------------------------------------------------------------
# mismatch correction


def _token_log_ratio(logp: Tensor, behavior_logp: Tensor, mask: Tensor) -> Tensor:
    """log pi - log mu on unmasked tokens, 0 elsewhere."""
    return (logp.detach() - behavior_logp.detach()) * mask.to(logp.dtype)


def _pooled(per_token: Tensor, mask: Tensor, level: str, traj_ids: Tensor | None, reduce: str) -> Tensor:
    """Sum or mean of a [B, T] quantity over each turn or trajectory, broadcast back to [B, T]."""
    m = mask.to(per_token.dtype)
    if level == "token":
        return per_token
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")
    total, count = (per_token * m).sum(-1), m.sum(-1)
    if level == "trajectory" and traj_ids is not None:
        index, k = dense_ids(traj_ids)
        total, count = group_sum(total, index, k)[index], group_sum(count, index, k)[index]
    pooled = total if reduce == "sum" else total / count.clamp(min=1)
    return pooled.unsqueeze(-1).expand_as(per_token)


def truncated_importance_weights(
    logp: Tensor,
    behavior_logp: Tensor,
    mask: Tensor,
    *,
    level: str = "token",
    cap: float = 2.0,
    traj_ids: Tensor | None = None,
) -> Tensor:
    """Truncated IS weights w = min(pi/mu, C), with pi/mu the token's, turn's or trajectory's ratio.

    Returns detached [B, T] weights (1 on masked positions) to pass as ``token_weights`` to a loss.
    The ratio of a turn or trajectory is the product of its token ratios, taken in log space.
    """
    log_ratio = _pooled(_token_log_ratio(logp, behavior_logp, mask), mask, level, traj_ids, "sum")
    weights = torch.exp(log_ratio.clamp(max=math.log(cap)))
    return torch.where(mask.bool(), weights, torch.ones_like(weights))


def rejection_mask(
    logp: Tensor,
    behavior_logp: Tensor,
    mask: Tensor,
    *,
    level: str = "turn",
    lower: float = 0.999,
    upper: float = 1.001,
    traj_ids: Tensor | None = None,
) -> Tensor:
    """Keep a token, turn or trajectory when its ratio lies in [lower, upper] (Dr. Kernel: [0.999, 1.001]).

    Token level uses the token's ratio pi/mu; turn and trajectory levels use the geometric mean
    exp(mean(log pi - log mu)) over their tokens, which does not grow with length. Returns the new
    bool loss mask.
    """
    log_ratio = _pooled(_token_log_ratio(logp, behavior_logp, mask), mask, level, traj_ids, "mean")
    inside = (log_ratio >= math.log(lower)) & (log_ratio <= math.log(upper))
    return mask.bool() & inside


def token_veto_mask(
    logp: Tensor,
    behavior_logp: Tensor,
    mask: Tensor,
    *,
    threshold: float = 1e-4,
    level: str = "trajectory",
    traj_ids: Tensor | None = None,
) -> Tensor:
    """Drop a whole turn or trajectory (``level``) when any of its tokens has pi/mu < ``threshold``.

    One token the trainer finds near-impossible signals a sampler bug or a numerics blow-up; the
    whole sequence is unreliable. Returns the new bool loss mask.
    """
    if level == "token":
        raise ValueError("token veto acts on a turn or a trajectory")
    low = ((_token_log_ratio(logp, behavior_logp, mask) < math.log(threshold)) & mask.bool()).to(logp.dtype)
    vetoed = _pooled(low, mask, level, traj_ids, "sum") > 0
    return mask.bool() & ~vetoed


def _normalized_ess(log_w: Tensor) -> Tensor:
    """(sum w)^2 / (n sum w^2), in (0, 1], from log-weights."""
    if log_w.numel() == 0:
        return log_w.new_tensor(1.0)
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0) - math.log(log_w.numel()))


def mismatch_metrics(
    logp: Tensor,
    behavior_logp: Tensor,
    mask: Tensor,
    *,
    kept: Tensor | None = None,
) -> dict[str, Tensor]:
    """How far the trainer (pi) is from the sampler (mu) on the sampled tokens; 0-dim detached tensors.

    - ``mismatch_kl_k1`` = mean(log mu - log pi), ``mismatch_kl_k3`` = mean(pi/mu - 1 - log(pi/mu)):
      estimates of KL(mu || pi) from mu's samples, over unmasked tokens.
    - ``ess_token`` / ``ess_turn``: normalised effective sample size (sum w)^2 / (n sum w^2) of the
      token ratios and of the per-row ratios (1 = no mismatch).
    - ``rejected_share``: share of unmasked tokens that ``kept`` (a filtered mask) drops; with ``kept``.
    """
    m = mask.bool()
    d = (logp.detach() - behavior_logp.detach())[m]
    out = {
        "mismatch_kl_k1": (-d).mean() if d.numel() else d.new_tensor(0.0),
        "mismatch_kl_k3": (torch.exp(d) - 1 - d).mean() if d.numel() else d.new_tensor(0.0),
        "ess_token": _normalized_ess(d),
    }
    rows = m.any(-1)
    out["ess_turn"] = _normalized_ess(_token_log_ratio(logp, behavior_logp, mask).sum(-1)[rows])
    if kept is not None:
        out["rejected_share"] = 1 - (kept.bool() & m).sum() / m.sum().clamp(min=1)
    return out
