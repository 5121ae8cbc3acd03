import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer, an elementwise minimum with a constant cap, then a constant subtraction."""

    def __init__(self, in_features: int, out_features: int, cap: float, shift: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.cap = cap
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        y = torch.minimum(y, torch.tensor(self.cap, dtype=y.dtype, device=y.device))
        return y - self.shift


batch_size = 2048
in_features = 8192
out_features = 2048
cap = 0.3
shift = 0.75


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, cap, shift]


SIZES = {"small": {"batch_size": 32, "in_features": 256, "out_features": 128}}
