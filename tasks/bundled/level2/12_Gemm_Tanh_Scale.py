import torch
import torch.nn as nn


class Model(nn.Module):
    """A GEMM (no bias) followed by tanh and a constant output scale."""

    def __init__(self, in_features: int, out_features: int, scale: float):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.gemm(x)) * self.scale


batch_size = 4096
in_features = 2048
out_features = 4096
scale = 2.5


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, scale]


SIZES = {"small": {"batch_size": 64, "in_features": 128, "out_features": 128}}
