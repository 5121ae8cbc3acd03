"""Building blocks for submissions in tests: an honest ReLU kernel to wrap hostile behaviour around."""

KERNEL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


def relu(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out
'''


def reply(code: str) -> str:
    """An LLM-style answer: a sentence, then one python block."""
    return f"Here is my solution.\n```python\n{code.strip()}\n```\n"


def relu_model(forward_body: str, prelude: str = "", init_body: str = "pass") -> str:
    """A ModelNew whose forward is ``forward_body`` (indented 8 spaces), after the honest kernel."""
    indented = "\n".join("        " + line for line in forward_body.strip().splitlines())
    return reply(f"{KERNEL}\n{prelude}\n\nclass ModelNew(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                 f"        {init_body}\n\n    def forward(self, x):\n{indented}\n")


def tagged(answer: str, tag: str) -> str:
    """The same answer with a comment inside its code block: new code, so no result-cache hit."""
    head, sep, tail = answer.rpartition("```")
    return f"{head}# {tag}\n{sep}{tail}"
