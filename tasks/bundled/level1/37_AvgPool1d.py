import torch
import torch.nn as nn


class Model(nn.Module):
    """1D average pooling over (N, C, L) with zero padding counted in the average."""

    def __init__(self, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.pool = nn.AvgPool1d(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


batch_size = 32
channels = 64
length = 65536
kernel_size = 4
stride = 2
padding = 1


def get_inputs():
    return [torch.randn(batch_size, channels, length)]


def get_init_inputs():
    return [kernel_size, stride, padding]


SIZES = {"small": {"batch_size": 2, "channels": 4, "length": 2048}}
