import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """LayerNorm over the hidden dimension, exact (erf) GELU, then a constant scale."""

    def __init__(self, hidden: int, scale: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.norm(x)) * self.scale


batch_size = 16
seq_len = 1024
hidden = 4096
scale = 1.5


def get_inputs():
    return [torch.randn(batch_size, seq_len, hidden)]


def get_init_inputs():
    return [hidden, scale]


SIZES = {"small": {"batch_size": 4, "seq_len": 8, "hidden": 256}}
