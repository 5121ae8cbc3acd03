import torch
import torch.nn as nn


class Model(nn.Module):
    """LayerNorm over the last dimension with learned weight and bias, differentiated in x, weight and bias."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        # non-trivial affine parameters, so they take part in the result
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.5)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


BACKWARD = True

batch_size = 8
seq_len = 1024
hidden_size = 4096


def get_inputs():
    return [torch.randn(batch_size, seq_len, hidden_size) * 2.0 + 0.5]


def get_init_inputs():
    return [hidden_size]


SIZES = {"small": {"batch_size": 2, "seq_len": 8, "hidden_size": 500}}
