import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Smooth L1 (Huber) loss with threshold beta, averaged over all elements."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(predictions, targets, beta=self.beta)


batch_size = 4096
dim = 16384


def get_inputs():
    targets = torch.rand(batch_size, dim) * 2.0 - 1.0
    # noise level varies per call, so errors land on both sides of beta in varying proportions
    noise_level = torch.rand(1) * 2.5 + 0.5
    predictions = targets + torch.randn(batch_size, dim) * noise_level
    return [predictions, targets]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 16, "dim": 512}}
