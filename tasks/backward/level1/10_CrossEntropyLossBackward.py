import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Mean cross-entropy of class logits against integer targets, differentiated in the logits."""

    def __init__(self):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


BACKWARD = True

batch_size = 8192
num_classes = 4096


def get_inputs():
    # a per-call temperature makes the loss level differ between calls
    temperature = torch.rand(1) * 3.0 + 0.5
    logits = torch.randn(batch_size, num_classes) * temperature
    targets = torch.randint(0, num_classes, (batch_size,))
    return [logits, targets]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 16, "num_classes": 500}}
