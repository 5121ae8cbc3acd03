"""What the env says: the task prompt, the message after each turn, and the readable transcript."""

from __future__ import annotations

from collections.abc import Sequence

from ..protocol import DTYPES
from ..scoring.tolerance import Tolerance

INSTRUCTIONS = """\
Write a faster version of this program with custom Triton kernels.

Answer with exactly one ```python code block that defines `class ModelNew(nn.Module)` with the same \
constructor arguments and `forward` signature as `Model`. Include every import. The forward pass must \
compute its result with your own `@triton.jit` kernels: calling PyTorch for the main work, skipping \
work, caching outputs or tampering with timing is detected and earns nothing. Outputs must match \
`Model` within atol = {atol:g}, rtol = {rtol:g} (tolerance preset {preset}; for outputs whose values are \
small the absolute tolerance shrinks to rtol times the output's root mean square)."""

INTERPRETER_NOTE = """\
Kernels run on a CPU under the Triton interpreter (TRITON_INTERPRET=1): do not use inline asm, bf16 \
`tl.dot` or `tl.make_block_ptr`; libdevice works, and multi-config autotuning runs its first config. \
Speed is scored by a roofline model of a GPU from the work your kernels do (bytes moved, FLOPs, programs \
launched), since CPU timings say nothing about a GPU."""

DTYPE_NOTE = """\
Precision: the harness casts every floating input, parameter and buffer to {dtype} (for `Model` and for \
`ModelNew` alike, with `.to(torch.{dtype})` after construction); your outputs must be {dtype} too."""

#: The Triton interpreter keeps bfloat16 values as their raw 16-bit patterns and computes on those.
INTERPRETER_BF16_NOTE = """\
The interpreter stores bfloat16 values as raw 16-bit integers and computes on those bits: convert every \
bfloat16 load with `.to(tl.float32)` before arithmetic and convert back with \
`.to(out_ptr.dtype.element_ty)` when storing (a GPU computes either way; float32 math is also more accurate)."""

BACKWARD_NOTE = """\
This is a backward task: each call also computes the gradients of the outputs (against upstream \
gradients drawn by the harness) with respect to every floating input and every parameter of `Model`, \
and checks them like outputs. Parameters are matched by name: give `ModelNew` the same parameter names \
and shapes as `Model`, created in the same order. Route the computation through a \
`torch.autograd.Function` whose `forward` and `backward` both launch your own kernels; gradients \
derived by torch's autograd, or by torch ops in your backward, are detected and earn nothing. \
Forward and backward are timed together."""

TRUNCATED = "\n[... truncated]"


def task_prompt(program: str, max_turns: int, backend: str, tol: Tolerance, backward: bool = False) -> str:
    """The first user message of an episode: the program, the rules, and what this run changes
    (the precision, the backend's limits, a backward task's gradients)."""
    parts = [
        f"Here is a PyTorch program:\n\n```python\n{program.strip()}\n```",
        INSTRUCTIONS.format(atol=tol.atol, rtol=tol.rtol, preset=tol.preset),
    ]
    if backward:
        parts.append(BACKWARD_NOTE)
    if tol.dtype != "fp32":
        parts.append(DTYPE_NOTE.format(dtype=DTYPES[tol.dtype]))
    if backend == "interpreter":
        parts.append(INTERPRETER_NOTE)
        if tol.dtype == "bf16":
            parts.append(INTERPRETER_BF16_NOTE)
    turns = "one turn" if max_turns == 1 else f"{max_turns} turns: after each answer you will be told whether it " \
        "compiled, whether it was correct, and how fast it ran"
    parts.append(f"You have {turns}.")
    return "\n\n".join(parts)


def turn_message(feedback: str, turn: int, max_turns: int, done: bool) -> str:
    """The user message after a turn: the evaluator's feedback plus where the episode stands."""
    tail = "The episode is over." if done else (
        f"You have {max_turns - turn} more turn{'s' if max_turns - turn > 1 else ''}: answer again with one "
        "```python block defining ModelNew.")
    return f"Turn {turn} of {max_turns}. {feedback}\n\n{tail}"


def transcript(messages: list[dict[str, str]], rewards: Sequence[float] = ()) -> str:
    """A readable conversation: each message under its role, each feedback with the turn's reward."""
    blocks = []
    for i, m in enumerate(messages):
        turn = (i - 1) // 2  # messages: prompt, then (reply, feedback) per turn
        head = m["role"]
        if m["role"] == "user" and i > 0 and turn < len(rewards):
            head += f" (reward {rewards[turn]:.3f})"
        blocks.append(f"--- {head} ---\n{m['content'].rstrip()}")
    return "\n\n".join(blocks) + "\n"
