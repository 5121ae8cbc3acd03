import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer, a Swish (SiLU) activation, then a learned per-feature bias."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.extra_bias = nn.Parameter(torch.randn(out_features) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        y = y * torch.sigmoid(y)
        return y + self.extra_bias


batch_size = 1024
in_features = 8192
out_features = 8192


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


SIZES = {"small": {"batch_size": 32, "in_features": 256, "out_features": 128}}
