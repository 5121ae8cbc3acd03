import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Inference-mode 2D batch normalization (NCHW) with fixed running statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.rand(num_features) + 0.5)
        self.bias = nn.Parameter(torch.randn(num_features) * 0.5)
        self.register_buffer("running_mean", torch.randn(num_features) * 0.5)
        self.register_buffer("running_var", torch.rand(num_features) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            training=False, eps=self.eps,
        )


batch_size = 32
num_features = 64
height = 256
width = 256


def get_inputs():
    return [torch.randn(batch_size, num_features, height, width)]


def get_init_inputs():
    return [num_features]


SIZES = {"small": {"batch_size": 2, "num_features": 8, "height": 32, "width": 32}}
