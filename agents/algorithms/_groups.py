"""Group bookkeeping shared by the algorithm modules: dense ids, per-group sums, registries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable)


def register(registry: dict[str, Callable], name: str) -> Callable[[F], F]:
    """Decorator that files a function under ``name``; a name can be taken only once."""

    def add(fn: F) -> F:
        if name in registry:
            raise ValueError(f"{name!r} is already registered")
        registry[name] = fn
        return fn

    return add


def dense_ids(*ids: Tensor) -> tuple[Tensor, int]:
    """Map arbitrary id values (one tensor, or several read as a tuple key) to 0..K-1; returns (index, K)."""
    key = ids[0] if len(ids) == 1 else torch.stack([i.to(torch.long) for i in ids], dim=1)
    uniq, inverse = torch.unique(key, dim=0 if key.dim() > 1 else None, return_inverse=True)
    return inverse, uniq.shape[0]


def group_sum(values: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """Per-group sums of ``values`` (first dim indexed by ``index``); shape [num_groups, ...]."""
    out = values.new_zeros((num_groups, *values.shape[1:]))
    return out.index_add_(0, index, values)


def check_rows(name: str, tensor: Tensor | None, n: int) -> None:
    if tensor is not None and tensor.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(tensor.shape)}")
