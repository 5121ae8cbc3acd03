import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer whose output is divided by a constant and clamped to a range."""

    def __init__(self, in_features: int, out_features: int, divisor: float, clamp_min: float, clamp_max: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.divisor = divisor
        self.clamp_min = clamp_min
        self.clamp_max = clamp_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x) / self.divisor
        return torch.clamp(y, min=self.clamp_min, max=self.clamp_max)


batch_size = 1024
in_features = 8192
out_features = 4096
divisor = 2.0
clamp_min = -0.25
clamp_max = 0.25


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, divisor, clamp_min, clamp_max]


SIZES = {"small": {"batch_size": 32, "in_features": 256, "out_features": 128}}
