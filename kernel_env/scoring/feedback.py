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
        return " ".join([f"Your output is {r.error}. Fix the kernel and answer again.", *_precision_hints(r)])
    if r.error:
        return f"Your code failed during {r.stage}:\n{r.error}"
    return _correct(r)


def _precision_hints(r: EvalResult) -> list[str]:
    """What is known to make right kernels look wrong at a precision: the interpreter's bfloat16, and
    TF32 dot products under a float32 tolerance of 1e-4."""
    hints = []
    if r.backend == "interpreter" and r.dtype == "bf16":
        hints.append("Note: the Triton interpreter stores bfloat16 values as raw 16-bit integers and computes on "
                     "those bits; convert loads with .to(tl.float32) before arithmetic and convert back when storing.")
    if r.backend == "cuda" and r.dtype == "fp32" and (r.tolerance.get("atol") or 1.0) < 1e-3:
        hints.append("Note: a float32 tl.dot rounds its inputs to TF32 on this GPU (about 1e-3 relative), which "
                     "this tolerance does not admit: pass input_precision=\"ieee\" to tl.dot.")
    return hints


def _correct(r: EvalResult) -> str:
    """Speed, then where the time goes. On the interpreter the model leads (the measured figures are
    CPU times); on CUDA the measurement leads and the model follows."""
    speed = [_modelled(r.modelled) if r.modelled else None, _measured(r)]
    if r.backend != "interpreter":
        speed.reverse()
    lines = ["Your kernel is correct.", *[s for s in speed if s]]
    if len(lines) == 1:
        return lines[0]
    if r.sol:
        lines.append(_speed_of_light(r.sol))
    if r.modelled:
        lines.append(_heaviest(r.modelled))
    if r.coverage is not None:
        lines.append(f"{r.coverage:.0%} of the time is spent in your own kernels.")
        if r.coverage < 0.5:
            lines.append("Most time is outside your kernels: move the heavy operations into Triton.")
    lines.append("Make it faster if you can, keeping it correct.")
    return " ".join(lines)


def _measured(r: EvalResult) -> str | None:
    """The timed figures; a short clause when the model already gave the speed on the interpreter."""
    if r.speedup is None:
        return None
    if r.backend == "interpreter" and r.modelled:
        return (f"Measured under the Triton interpreter on CPU (not a GPU figure): {r.runtime_ms:.3f} ms vs "
                f"{r.ref_runtime_ms:.3f} ms.")
    unit = " (Triton interpreter timing on CPU, not a GPU figure)" if r.backend == "interpreter" else ""
    return (f"Runtime {r.runtime_ms:.3f} ms vs reference {r.ref_runtime_ms:.3f} ms: "
            f"speedup {r.speedup:.2f}x{unit}.")


def _modelled(m: dict) -> str:
    """The modelled figure, said to be a model so that it is not read as a measurement."""
    flags = f" Model flags: {', '.join(m['flags'])}." if m.get("flags") else ""
    return (f"Modelled on {m['gpu']} (a roofline model from the work your kernels did, not a measurement): "
            f"{m['runtime_us']:.1f} us vs reference {m['ref_runtime_us']:.1f} us, speedup {m['speedup']:.2f}x, "
            f"{m['bound']}-bound.{flags}")


def _speed_of_light(sol: dict) -> str:
    """How close the measured time came to the roofline, in the one figure that bounds it: bandwidth
    for memory-bound work, the peak of its precision for compute-bound work."""
    if sol["bound"] == "memory":
        share = (f"{_percent(sol['bandwidth_fraction'])} of HBM bandwidth "
                 f"({_rate(sol['achieved_gbps'] * 1e9, 'B')} achieved)")
    else:
        share = (f"{_percent(sol['compute_fraction'])} of the {sol.get('precision', 'fp32').upper()} peak "
                 f"({_rate(sol['achieved_tflops'] * 1e12, 'FLOP')} achieved)")
    whose = " (the reference's work over your measured time)" if sol.get("work") == "reference ops" else ""
    above = (" Above 100%: caches served repeated reads (or the work is overcounted); kept as measured, not clipped."
             if "above_peak" in sol.get("flags", ()) else "")
    return f"Speed of light on {sol['gpu']}{whose}: {share}, {sol['bound']}-bound.{above}"


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.1 else f"{fraction:.1%}"


def _rate(per_second: float, unit: str) -> str:
    """A rate with its SI prefix: 2.9 TB/s, 850 GB/s, 445 TFLOP/s."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {prefix}{unit}/s"
    return f"{per_second:.3g} {unit}/s"


def _heaviest(m: dict, top: int = 3) -> str:
    """Where the modelled time goes, so the next attempt knows what to work on."""
    rows = sorted(m.get("rows") or [], key=lambda row: -row["us"])[:top]
    if not rows:
        return "No work of yours was recorded."
    return "Heaviest of yours (modelled): " + "; ".join(_row(row) for row in rows) + "."


def _row(row: dict) -> str:
    """One row as name, count, time and bound: enough to say what to fix, short enough for every turn."""
    times = f" x{row['count']}" if row.get("count", 1) > 1 else ""
    return f"{row['name'][:48]}{times} {row['us']:.1f} us ({row['bound']})"
