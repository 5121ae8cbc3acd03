import torch
import torch.nn as nn


class Model(nn.Module):
    """Adds a learned per-column bias vector to every row of a matrix."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


batch_size = 4096
dim = 65536


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim]


SIZES = {"small": {"batch_size": 16, "dim": 1000}}
