import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """SiLU (swish) elementwise, y = x * sigmoid(x); the answer supplies its forward and its gradient in x."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


BACKWARD = True

batch_size = 4096
dim = 16384


def get_inputs():
    return [torch.randn(batch_size, dim) * 3.0]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 16, "dim": 1000}}
