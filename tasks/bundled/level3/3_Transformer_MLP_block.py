import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """The feed-forward half of a pre-norm transformer block: x + W2 GELU(W1 LayerNorm(x))."""

    def __init__(self, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.fc_in = nn.Linear(embed_dim, hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc_in(self.norm(x)), approximate="tanh")
        return x + self.fc_out(h)


batch_size = 8
seq_len = 1024
embed_dim = 1024
hidden_dim = 4096


def get_inputs():
    return [torch.randn(batch_size, seq_len, embed_dim)]


def get_init_inputs():
    return [embed_dim, hidden_dim]


SIZES = {"small": {"batch_size": 2, "seq_len": 16, "embed_dim": 64, "hidden_dim": 256}}
