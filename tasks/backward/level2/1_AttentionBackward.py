import math

import torch
import torch.nn as nn


class Model(nn.Module):
    """Single-head attention softmax(q @ k^T / sqrt(d)) @ v on (batch, seq, d) inputs, differentiated in q, k, v."""

    def __init__(self):
        super().__init__()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return torch.softmax(scores, dim=-1) @ v


BACKWARD = True

batch_size = 32
seq_len = 512
head_dim = 64


def get_inputs():
    q = torch.randn(batch_size, seq_len, head_dim)
    k = torch.randn(batch_size, seq_len, head_dim)
    v = torch.randn(batch_size, seq_len, head_dim)
    return [q, k, v]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 2, "seq_len": 48, "head_dim": 16}}
