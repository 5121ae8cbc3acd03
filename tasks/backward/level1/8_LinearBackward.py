import torch
import torch.nn as nn


class Model(nn.Module):
    """A fully connected layer y = x @ W.T + b, differentiated in x, W and b."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


BACKWARD = True

batch_size = 4096
in_features = 4096
out_features = 4096


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


SIZES = {"small": {"batch_size": 24, "in_features": 96, "out_features": 80}}
