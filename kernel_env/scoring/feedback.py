"""The next user message: what happened to the submission, in words an LLM can act on."""

from __future__ import annotations

from .hacks import describe
from .result import NOT_YOUR_FAULT, EvalResult


def feedback(result: EvalResult) -> str:
    """What happened, led by which code block was evaluated when the reply had several."""
    text = _what_happened(result)
    note = next((f for f in result.findings if f.startswith("evaluated code block")), None)
    return f"({note[0].upper()}{note[1:]}.) {text}" if note and not result.harness_error else text


def _what_happened(r: EvalResult) -> str:
    if r.harness_error:
        return NOT_YOUR_FAULT
    if r.stage == "parse":
        return f"Your answer could not be used: {r.error}"
    if not r.compiled:
        return f"Your code failed to compile or construct ModelNew:\n{r.error}"
    if r.hacks:
        return (
            "Your submission was rejected because the evaluator detected reward hacking:\n"
            f"{describe(r.hacks, r.hack_details)}\nRewrite it so your own Triton kernels compute the result."
        )
    if not r.correct and r.stage == "correctness" and r.error and r.error.startswith("incorrect"):
        return f"Your output is {r.error}. Fix the kernel and answer again."
    if r.error:
        return f"Your code failed during {r.stage}:\n{r.error}"
    if r.speedup is None:
        return "Your kernel is correct."
    unit = " (Triton interpreter timing on CPU, not a GPU figure)" if r.backend == "interpreter" else ""
    lines = [
        f"Your kernel is correct. Runtime {r.runtime_ms:.3f} ms vs reference {r.ref_runtime_ms:.3f} ms: "
        f"speedup {r.speedup:.2f}x{unit}."
    ]
    if r.coverage is not None:
        lines.append(f"{r.coverage:.0%} of the time is spent in your own kernels.")
        if r.coverage < 0.5:
            lines.append("Most time is outside your kernels: move the heavy operations into Triton.")
    lines.append("Make it faster if you can, keeping it correct.")
    return " ".join(lines)
