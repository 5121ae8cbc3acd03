import torch
import torch.nn as nn


class Model(nn.Module):
    """Multiplies the transpose of A by B: A is (K, M), B is (K, N), result is (M, N)."""

    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A.T, B)


M = 2048
K = 8192
N = 4096


def get_inputs():
    A = torch.randn(K, M)
    B = torch.randn(K, N)
    return [A, B]


def get_init_inputs():
    return []


SIZES = {"small": {"M": 40, "K": 72, "N": 56}}
