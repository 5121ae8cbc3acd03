import torch
import torch.nn as nn


class Model(nn.Module):
    """Averages a 3D tensor over one dimension (the dimension is removed)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean(x, dim=self.dim)


batch_size = 256
dim1 = 256
dim2 = 2048
reduce_dim = 1


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [reduce_dim]


SIZES = {"small": {"batch_size": 4, "dim1": 32, "dim2": 128}}
