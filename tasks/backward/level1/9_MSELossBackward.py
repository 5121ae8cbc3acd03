import torch
import torch.nn as nn


class Model(nn.Module):
    """Mean squared error over all elements, differentiated in both the predictions and the targets."""

    def __init__(self):
        super().__init__()

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.mean((predictions - targets) ** 2)


BACKWARD = True

batch_size = 4096
dim = 16384


def get_inputs():
    targets = torch.rand(batch_size, dim) * 2.0 - 1.0
    # predictions are the targets plus noise whose level changes from call to call
    noise_level = torch.rand(1) * 2.0 + 0.5
    predictions = targets + torch.randn(batch_size, dim) * noise_level
    return [predictions, targets]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 16, "dim": 500}}
