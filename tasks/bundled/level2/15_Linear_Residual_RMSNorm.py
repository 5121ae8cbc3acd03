import torch
import torch.nn as nn


class Model(nn.Module):
    """A square linear layer with a residual connection, followed by RMSNorm."""

    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x) + x
        rms = torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return y * rms * self.weight


batch_size = 4096
hidden = 4096
eps = 1e-6


def get_inputs():
    return [torch.randn(batch_size, hidden)]


def get_init_inputs():
    return [hidden, eps]


SIZES = {"small": {"batch_size": 32, "hidden": 128}}
