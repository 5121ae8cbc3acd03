import math

import torch
import torch.nn as nn


class Model(nn.Module):
    """One self-attention head: q/k/v projections, scaled dot-product attention, output projection."""

    def __init__(self, embed_dim: int, head_dim: int, causal: bool):
        super().__init__()
        self.q_proj = nn.Linear(embed_dim, head_dim)
        self.k_proj = nn.Linear(embed_dim, head_dim)
        self.v_proj = nn.Linear(embed_dim, head_dim)
        self.out_proj = nn.Linear(head_dim, embed_dim)
        self.head_dim = head_dim
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q_proj(x)
        k = self.k_proj(x)
        v = self.v_proj(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if self.causal:
            seq_len = x.shape[1]
            future = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool, device=x.device), diagonal=1)
            scores = scores.masked_fill(future, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        return self.out_proj(attn @ v)


batch_size = 16
seq_len = 2048
embed_dim = 1024
head_dim = 128
causal = True


def get_inputs():
    return [torch.randn(batch_size, seq_len, embed_dim)]


def get_init_inputs():
    return [embed_dim, head_dim, causal]


SIZES = {"small": {"batch_size": 2, "seq_len": 64, "embed_dim": 64, "head_dim": 32}}
