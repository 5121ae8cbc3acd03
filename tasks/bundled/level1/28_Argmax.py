import torch
import torch.nn as nn


class Model(nn.Module):
    """Index of the maximum of a 3D tensor along one dimension (int64 output)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.argmax(x, dim=self.dim)


batch_size = 128
dim1 = 1024
dim2 = 1024
reduce_dim = 1


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [reduce_dim]


SIZES = {"small": {"batch_size": 4, "dim1": 64, "dim2": 64}}
