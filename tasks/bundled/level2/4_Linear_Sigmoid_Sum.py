import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer, a sigmoid, then a sum over the features of each row."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(self.linear(x))
        return torch.sum(y, dim=1, keepdim=True)


batch_size = 1024
input_size = 8192
hidden_size = 4096


def get_inputs():
    return [torch.randn(batch_size, input_size)]


def get_init_inputs():
    return [input_size, hidden_size]


SIZES = {"small": {"batch_size": 32, "input_size": 256, "hidden_size": 128}}
