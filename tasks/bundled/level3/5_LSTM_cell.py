import torch
import torch.nn as nn


class Model(nn.Module):
    """One step of an LSTM cell with input and hidden projections; returns the new (h, c)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_proj = nn.Linear(input_size, 4 * hidden_size)
        self.hidden_proj = nn.Linear(hidden_size, 4 * hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        gates = self.input_proj(x) + self.hidden_proj(h)
        i, f, g, o = gates.chunk(4, dim=1)
        i = torch.sigmoid(i)
        f = torch.sigmoid(f)
        g = torch.tanh(g)
        o = torch.sigmoid(o)
        c_next = f * c + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next


batch_size = 2048
input_size = 1024
hidden_size = 2048


def get_inputs():
    x = torch.randn(batch_size, input_size)
    h = torch.randn(batch_size, hidden_size)
    c = torch.randn(batch_size, hidden_size)
    return [x, h, c]


def get_init_inputs():
    return [input_size, hidden_size]


SIZES = {"small": {"batch_size": 16, "input_size": 64, "hidden_size": 64}}
