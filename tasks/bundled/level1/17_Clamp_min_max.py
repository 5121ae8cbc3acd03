import torch
import torch.nn as nn


class Model(nn.Module):
    """Clamps x elementwise between per-element lower and upper bound tensors."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=lower, max=upper)


batch_size = 4096
dim = 16384


def get_inputs():
    x = torch.randn(batch_size, dim)
    lower = torch.rand(batch_size, dim) - 1.0
    upper = torch.rand(batch_size, dim)
    return [x, lower, upper]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 8, "dim": 600}}
