"""Selection at test time: rank candidates without a reference, and pick the best turn.

- ACES: given a pass matrix (candidates x tests) from generated tests of unknown quality, weight each
  test by how well it agrees with the others (its leave-one-out AUC), then rank candidates by
  weighted passes. Useful for best-of-many when the reference solution is unavailable.
- Best-of-turns: a multi-turn run leaves one scored candidate per turn; keep the best one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._groups import check_rows, dense_ids


def aces_test_auc(pass_matrix: Tensor) -> Tensor:
    """Leave-one-out AUC of each test (ACES): Tensor[K].

    For test k, rank candidates by their pass counts on the other tests; the AUC is the chance that
    a candidate passing k outranks one failing it (ties count 1/2). A test that every candidate
    passes, or every candidate fails, gets 1/2 (it tells nothing).
    """
    b = pass_matrix.to(torch.get_default_dtype())
    if b.dim() != 2:
        raise ValueError(f"pass_matrix must be 2-D (candidates x tests), got shape {tuple(b.shape)}")
    others = b.sum(1, keepdim=True) - b  # [C, K]: passes on the other tests
    auc = torch.full((b.shape[1],), 0.5, dtype=b.dtype, device=b.device)
    for k in range(b.shape[1]):
        passed = b[:, k] > 0
        n_pos, n_neg = int(passed.sum()), int((~passed).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        diff = others[passed, k].unsqueeze(1) - others[~passed, k].unsqueeze(0)  # [P, N]
        auc[k] = ((diff > 0).to(b.dtype) + 0.5 * (diff == 0).to(b.dtype)).mean()
    return auc


def aces_weights(pass_matrix: Tensor) -> Tensor:
    """Test weights w_k = max(0, AUC_k - 1/2) (ACES): tests that disagree with the rest weigh 0."""
    return (aces_test_auc(pass_matrix) - 0.5).clamp(min=0)


def aces_scores(pass_matrix: Tensor) -> Tensor:
    """Candidate scores sum_k w_k B[c, k]: Tensor[C]."""
    return pass_matrix.to(torch.get_default_dtype()) @ aces_weights(pass_matrix)


def aces_rank(pass_matrix: Tensor) -> Tensor:
    """Candidate indices, best first, by ACES score (ties keep the lower index first)."""
    return torch.argsort(aces_scores(pass_matrix), descending=True, stable=True)


def best_of_turns(
    scores: Tensor,
    *,
    group_ids: Tensor,
    turns: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Best row per group: (group ids sorted, row index of the best-scoring valid row).

    ``group_ids`` names what the turns compete within (a trajectory, or a task to pool several
    trajectories). Ties go to the earliest turn (``turns``, else row order), the cheaper answer. A
    group without a valid row gets index -1.
    """
    n = scores.shape[0]
    check_rows("group_ids", group_ids, n)
    check_rows("turns", turns, n)
    check_rows("valid", valid, n)
    index, k = dense_ids(group_ids)
    uniq = torch.unique(group_ids)
    ok = torch.ones(n, dtype=torch.bool, device=scores.device) if valid is None else valid.bool()
    order = torch.arange(n, device=scores.device)
    if turns is not None:
        order = order[torch.argsort(turns, stable=True)]
    key = scores.to(torch.float64).masked_fill(~ok, float("-inf"))
    order = order[torch.argsort(key[order], descending=True, stable=True)]
    order = order[torch.argsort(index[order], stable=True)]
    first = torch.ones(n, dtype=torch.bool, device=scores.device)
    first[1:] = index[order][1:] != index[order][:-1]
    best = torch.full((k,), -1, dtype=torch.long, device=scores.device)
    heads = order[first]
    best[index[heads]] = torch.where(ok[heads], heads, torch.full_like(heads, -1))
    return uniq, best
