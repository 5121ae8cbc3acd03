import torch
import torch.nn as nn


class Model(nn.Module):
    """Batched matrix multiply: (batch, M, K) @ (batch, K, N) -> (batch, M, N)."""

    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.bmm(A, B)


batch_size = 128
m = 512
k = 1024
n = 1024


def get_inputs():
    A = torch.randn(batch_size, m, k)
    B = torch.randn(batch_size, k, n)
    return [A, B]


def get_init_inputs():
    return []


SIZES = {"small": {"batch_size": 4, "m": 24, "k": 40, "n": 48}}
