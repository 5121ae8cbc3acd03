"""One step's training data as a single flat batch of rows, cut into micro-batches by row subsets.

Row i of every field is the same turn sample, so a subset of rows (``Batch.take``) is again a
batch: the update shuffles row indices, splits them into minibatches and micro-batches, and never
handles a loose tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor


@dataclass
class Batch:
    """Flat training rows; token tensors are [N, R], response-aligned and as wide as the longest response."""

    prompts: list[list[int]]
    responses: list[list[int]]
    rows: dict[str, Tensor]  # per-row tensors from ``agents.rollout.sample_tensors``
    old_logp: Tensor  # log pi_old: the trainer's weights that sampled
    behavior_logp: Tensor  # log mu: what the sampler reported
    mask: Tensor  # real response tokens
    loss_mask: Tensor  # tokens that the filters left in the loss
    token_weights: Tensor | None  # truncated importance weights, when the recipe uses them
    advantages: Tensor  # one per row

    def __len__(self) -> int:
        return len(self.responses)

    @property
    def tokens(self) -> int:
        """Prompt plus response tokens: what a forward pass over these rows reads."""
        return sum(len(p) + len(r) for p, r in zip(self.prompts, self.responses))

    def take(self, idx: Sequence[int]) -> Batch:
        """Rows ``idx``, token tensors cut to the longest of their responses (the width the policy scores at)."""
        idx = list(idx)
        responses = [self.responses[i] for i in idx]
        width = max((len(r) for r in responses), default=0)

        def cut(tokens: Tensor) -> Tensor:
            return tokens[idx, :width]

        return Batch(
            prompts=[self.prompts[i] for i in idx],
            responses=responses,
            rows={k: v[idx] for k, v in self.rows.items()},
            old_logp=cut(self.old_logp),
            behavior_logp=cut(self.behavior_logp),
            mask=cut(self.mask),
            loss_mask=cut(self.loss_mask),
            token_weights=None if self.token_weights is None else cut(self.token_weights),
            advantages=self.advantages[idx],
        )
