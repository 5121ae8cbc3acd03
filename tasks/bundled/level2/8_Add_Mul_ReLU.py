import torch
import torch.nn as nn


class Model(nn.Module):
    """Adds two tensors, multiplies the sum by a third (a gate) and applies ReLU."""

    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return torch.relu((a + b) * gate)


batch_size = 32
seq_len = 512
hidden = 2048


def get_inputs():
    a = torch.randn(batch_size, seq_len, hidden)
    b = torch.randn(batch_size, seq_len, hidden)
    gate = torch.randn(batch_size, seq_len, hidden)
    return [a, b, gate]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 2, "seq_len": 8, "hidden": 256}}
