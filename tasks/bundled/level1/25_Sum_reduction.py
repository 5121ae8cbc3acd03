import torch
import torch.nn as nn


class Model(nn.Module):
    """Sums a 3D tensor over one dimension, keeping that dimension with size 1."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(x, dim=self.dim, keepdim=True)


batch_size = 128
dim1 = 1024
dim2 = 1024
reduce_dim = 1


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [reduce_dim]


SIZES = {"small": {"batch_size": 4, "dim1": 64, "dim2": 64}}
