import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """KL divergence of target distributions from predicted log-probabilities (batchmean)."""

    def __init__(self):
        super().__init__()

    def forward(self, log_predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.kl_div(log_predictions, targets, reduction="batchmean")


batch_size = 8192
num_classes = 4096


def get_inputs():
    # per-call sharpness of both distributions, so the divergence level varies between calls
    sharpness = torch.rand(2) * 2.0 + 0.5
    log_predictions = torch.log_softmax(torch.randn(batch_size, num_classes) * sharpness[0], dim=1)
    targets = torch.softmax(torch.randn(batch_size, num_classes) * sharpness[1], dim=1)
    return [log_predictions, targets]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 16, "num_classes": 512}}
