import torch
import torch.nn as nn


class Model(nn.Module):
    """RMSNorm over the last dimension scaled by a learned weight, differentiated in x and the weight."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms_inv = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return x * rms_inv * self.weight


BACKWARD = True

batch_size = 8
seq_len = 1024
hidden_size = 4096


def get_inputs():
    return [torch.randn(batch_size, seq_len, hidden_size)]


def get_init_inputs():
    return [hidden_size]


SIZES = {"small": {"batch_size": 2, "seq_len": 8, "hidden_size": 500}}
