"""The algorithm library: pure torch functions the trainer composes.

- ``ADVANTAGE_ESTIMATORS``: name -> fn(rewards, *, group_ids, traj_ids, turns, gamma, ...) -> A.
- ``ADVANTAGE_LEVELS``: "turn" / "trajectory" -> fn(estimator, rewards, *, group_ids, traj_ids, turns,
  gamma, **inputs) -> A, one per turn row: where the estimator is applied.
- ``POLICY_LOSSES``: name -> fn(logp, old_logp, advantages, mask, *, behavior_logp, agg, ...) -> (loss, metrics).
- ``filters``: PRS keep masks and sampler/trainer mismatch correction.
- ``sampling``: Reinforce-Ada adaptive sampling and its global baseline.
- ``selection``: ACES ranking and best-of-turns.

The REINFORCE advantage and the REINFORCE loss share a name, so reach both through the registries.
No dependency on the environment or the task set.
"""

from .advantages import (
    ADVANTAGE_ESTIMATORS,
    dr_grpo,
    global_mean,
    grpo,
    leave_one_out_baseline,
    returns_to_go,
    rloo,
    trloo,
)
from .filters import (
    mismatch_metrics,
    prs_keep_mask,
    prs_keep_probability,
    rejection_mask,
    token_veto_mask,
    truncated_importance_weights,
)
from .levels import ADVANTAGE_LEVELS, first_turn_mask, trajectory_level, turn_level
from .losses import (
    AGG_MODES,
    POLICY_LOSSES,
    agg_denominator,
    aggregate,
    asymre,
    kl_penalty,
    masked_mean,
    opmd,
    ppo_clip,
    rec,
    rest_of_trajectory,
    topr,
)
from .sampling import (
    AdaResult,
    ScoredSample,
    TaskStats,
    balanced_downsample,
    exit_rule_holds,
    global_positive_share,
    global_return_baselines,
    reinforce_ada,
)
from .selection import aces_rank, aces_scores, aces_test_auc, aces_weights, best_of_turns

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ADVANTAGE_LEVELS",
    "AGG_MODES",
    "POLICY_LOSSES",
    "AdaResult",
    "ScoredSample",
    "TaskStats",
    "aces_rank",
    "aces_scores",
    "aces_test_auc",
    "aces_weights",
    "agg_denominator",
    "aggregate",
    "asymre",
    "balanced_downsample",
    "best_of_turns",
    "dr_grpo",
    "exit_rule_holds",
    "first_turn_mask",
    "global_mean",
    "global_positive_share",
    "global_return_baselines",
    "grpo",
    "kl_penalty",
    "leave_one_out_baseline",
    "masked_mean",
    "mismatch_metrics",
    "opmd",
    "ppo_clip",
    "prs_keep_mask",
    "prs_keep_probability",
    "rec",
    "reinforce_ada",
    "rest_of_trajectory",
    "rejection_mask",
    "returns_to_go",
    "rloo",
    "token_veto_mask",
    "topr",
    "trajectory_level",
    "trloo",
    "truncated_importance_weights",
    "turn_level",
]
