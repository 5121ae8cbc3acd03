import torch
import torch.nn as nn


class Model(nn.Module):
    """A classifier head: a linear layer followed by log-softmax over the classes."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.head(x), dim=-1)


batch_size = 2048
in_features = 4096
num_classes = 8192


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, num_classes]


SIZES = {"small": {"batch_size": 32, "in_features": 128, "num_classes": 384}}
