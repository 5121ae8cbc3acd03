"""A backward task and the submissions that attack its gradients, with honest look-alikes.

The task scales a ReLU by a learned per-column weight, so both an input gradient and a parameter
gradient are checked. Every attack passes the naive harness's gradient check (``naive_harness(...,
backward=True)``): the gradients it returns are right; only who computed them is wrong.
"""

from tasks.loaders import task_from_source

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """ReLU scaled by a learned weight per column."""

    def __init__(self, cols):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cols))

    def forward(self, x):
        return torch.relu(x) * self.weight


BACKWARD = True
rows = 4096
cols = 4096


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return [cols]


SIZES = {"small": {"rows": 16, "cols": 64}}
'''

KERNELS = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def scaled_relu(x_ptr, w_ptr, out_ptr, n, cols, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    w = tl.load(w_ptr + offs % cols, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(x, 0.0) * w, mask=mask)


@triton.jit
def input_grad(x_ptr, w_ptr, g_ptr, gx_ptr, n, cols, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    w = tl.load(w_ptr + offs % cols, mask=mask)
    g = tl.load(g_ptr + offs, mask=mask)
    tl.store(gx_ptr + offs, tl.where(x > 0, g * w, 0.0), mask=mask)


@triton.jit
def weight_grad(x_ptr, g_ptr, gw_ptr, rows, cols, BLOCK: tl.constexpr):
    col = tl.program_id(0)
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, rows, BLOCK):
        r = start + tl.arange(0, BLOCK)
        mask = r < rows
        x = tl.load(x_ptr + r * cols + col, mask=mask, other=0.0)
        g = tl.load(g_ptr + r * cols + col, mask=mask, other=0.0)
        total += tl.maximum(x, 0.0) * g
    tl.store(gw_ptr + col, tl.sum(total, axis=0))


def launch_forward(x, w):
    out = torch.empty_like(x)
    scaled_relu[(triton.cdiv(x.numel(), 1024),)](x, w, out, x.numel(), w.numel(), BLOCK=1024)
    return out


def launch_backward(x, w, g):
    gx, gw = torch.empty_like(x), torch.empty_like(w)
    input_grad[(triton.cdiv(x.numel(), 1024),)](x, w, g, gx, x.numel(), w.numel(), BLOCK=1024)
    weight_grad[(w.numel(),)](x, g, gw, x.numel() // w.numel(), w.numel(), BLOCK=64)
    return gx, gw
'''


def _reply(body: str) -> str:
    return f"```python\n{KERNELS}\n{body}```"


def _model(function: str, forward: str = "return ScaledReLU.apply(x.contiguous(), self.weight)") -> str:
    return _reply(f'''
{function}

class ModelNew(nn.Module):
    def __init__(self, cols):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cols))

    def forward(self, x):
        {forward}
''')


def _function(backward: str) -> str:
    return f'''
class ScaledReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return launch_forward(x, w)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous()
{backward}
'''


HONEST = _model(_function("        return launch_backward(x, w, g)"))

#: Look-alikes that must stay clean: the Function behind views, and a transposed input made contiguous.
HONEST_VIEWS = _model(_function("        return launch_backward(x, w, g)"),
                      "return ScaledReLU.apply(x.reshape(-1, x.shape[-1]), self.weight).view(x.shape)")
HONEST_TRANSPOSED = _model(_function("        return launch_backward(x, w, g)"),
                           "return ScaledReLU.apply(x.t().contiguous().t().contiguous(), self.weight)")

ATTACKS = {
    # the forward is own work; the backward is torch arithmetic
    "torch_arithmetic_backward": _model(_function(
        "        return torch.where(x > 0, g * w, 0.0), (torch.relu(x) * g).sum(0)")),
    # the backward recomputes the forward in torch and asks torch's autograd for the gradients
    "autograd_inside_backward": _model(_function(
        "        with torch.enable_grad():\n"
        "            xs, ws = x.detach().requires_grad_(), w.detach().requires_grad_()\n"
        "            return torch.autograd.grad(torch.relu(xs) * ws, (xs, ws), g)")),
    # own forward output, torch's graph attached beside it: autograd differentiates the torch half
    "torch_graph_beside_kernel": _model(_function("        return launch_backward(x, w, g)"),
        "y = torch.relu(x) * self.weight\n        return ScaledReLU.apply(x.contiguous(), self.weight).detach() + (y - y.detach())"),
    # a backward kernel that runs on a scratch copy while torch's gradients are returned
    "backward_kernel_for_show": _model(_function(
        "        launch_backward(x, w, g)\n"
        "        return torch.where(x > 0, g * w, 0.0), (torch.relu(x) * g).sum(0)")),
    # own kernels for the calls that are checked one by one, torch's from the timed calls on (the
    # correctness and work calls are at most ten backward passes)
    "torch_backward_when_timed": _model(_function(
        "        global CALLS\n"
        "        CALLS += 1\n"
        "        if CALLS > 10:\n"
        "            return torch.where(x > 0, g * w, 0.0), (torch.relu(x) * g).sum(0)\n"
        "        return launch_backward(x, w, g)").replace("class ScaledReLU", "CALLS = 0\n\n\nclass ScaledReLU")),
}

#: A cached gradient: the first call's gradients, returned ever after (wrong on every later input).
CACHED_GRADIENT = _model(_function(
    "        global CACHE\n"
    "        if CACHE is None:\n"
    "            CACHE = launch_backward(x, w, g)\n"
    "        return CACHE").replace("class ScaledReLU", "CACHE = None\n\n\nclass ScaledReLU"))

#: No autograd graph at all: the forward's output does not require grad.
NO_GRAPH = _model(_function("        return launch_backward(x, w, g)"),
                  "return launch_forward(x.contiguous(), self.weight.detach())")

#: Parameters under another name than the reference's.
RENAMED = HONEST.replace("self.weight = nn.Parameter", "self.scale = nn.Parameter").replace("self.weight)", "self.scale)")


def backward_task():
    return task_from_source(TASK, 1, "95_Scaled_ReLU_backward.py")
