import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Inference-time linear layer with dropout (an identity in eval), then the max over features."""

    def __init__(self, in_features: int, out_features: int, dropout_p: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.dropout_p = dropout_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        y = F.dropout(y, p=self.dropout_p, training=False)
        return torch.amax(y, dim=1, keepdim=True)


batch_size = 2048
in_features = 4096
out_features = 4096
dropout_p = 0.2


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, dropout_p]


SIZES = {"small": {"batch_size": 32, "in_features": 256, "out_features": 128}}
