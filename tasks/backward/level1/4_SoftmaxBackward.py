import torch
import torch.nn as nn


class Model(nn.Module):
    """Softmax over the last dimension of a 2D batch of logits, with its gradient in the logits."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


BACKWARD = True

batch_size = 4096
dim = 16384


def get_inputs():
    # scaled logits so the distributions are peaked rather than nearly uniform
    return [torch.randn(batch_size, dim) * 3.0]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 16, "dim": 1000}}
