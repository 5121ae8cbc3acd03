"""Make benchmark-scale KernelBench programs runnable on a CPU by scaling their size constants.

External files carry only benchmark sizes (ReLU is 4096 x 393216 floats). We divide every large
module-level integer constant by a common power of two, keep the divisibility relations the file
has (channels % groups, embed % heads, ...), and verify each candidate preset by building the
reference and running it once. Presets are tried from the most aggressive to the mildest; the
mildest that fits the budget wins, because larger problems exercise kernels more honestly.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import torch

from .task import SMALL, Task, TaskError

#: Constants below this are shapes' small parts (kernel sizes, strides, dims to reduce): never scaled.
MIN_SCALED = 8
#: Structural constants keep their value whatever their size: they define the model, not its scale.
#: Divisors whose quotient is a per-group width: that width must not collapse to one.
PER_GROUP = re.compile(r"group|head", re.I)
#: What group and head counts divide; other multiples of them (a batch of 64 with 8 groups) are chance.
CHANNEL_LIKE = re.compile(r"chan|feat|embed|dim|hidden|model|n_embd", re.I)
STRUCTURAL = re.compile(r"group|head|kernel|stride|pad|dilation|layers", re.I)


@dataclass(frozen=True)
class Budget:
    """What a ``small`` preset may cost: element counts on the meta device, then a real run."""

    max_input_elements: int = 1 << 16
    max_output_elements: int = 1 << 16
    max_param_elements: int = 1 << 18
    max_seconds: float = 0.5


class NotShrinkable(TaskError):
    """No scaled preset runs the reference within the budget; the message says why."""


def scaled_constants(constants: dict[str, int], shift: int) -> dict[str, int]:
    """Divide each large constant by ``2**shift``, then restore divisibility relations.

    If ``a % b == 0`` in the original and ``b`` is a fixed constant (a group or head count, a kernel
    size), the result keeps ``a`` a multiple of ``b``; for group and
    head counts, at least ``min(a/b, 4)`` times ``b``: channels per group or per head must not collapse
    to one (a GroupNorm over single channels outputs zeros).
    """
    scaled = {n: max(2, round(v / (1 << shift))) for n, v in constants.items()
              if v >= MIN_SCALED and not STRUCTURAL.search(n)}
    new = {**constants, **scaled}
    relations = [
        (a, b)
        for a, va in constants.items()
        for b, vb in constants.items()
        if a != b and a in scaled and b not in scaled and vb > 1 and va % vb == 0 and va >= vb
        and (not PER_GROUP.search(b) or CHANNEL_LIKE.search(a))
    ]  # only relations to fixed constants: a common power-of-two scale keeps the others
    for _ in range(len(relations) + 1):  # a fixed point is reached in few passes
        changed = False
        for a, b in relations:
            floor = new[b] * min(constants[a] // constants[b], 4) if PER_GROUP.search(b) else new[b]
            if new[a] % new[b] or new[a] < floor:
                new[a] = max(floor, math.ceil(new[a] / new[b]) * new[b])
                changed = True
        if not changed:
            break
    return {n: v for n, v in new.items() if v != constants[n]}


def _numel(values) -> int:
    return sum(v.numel() for v in values if isinstance(v, torch.Tensor))


def _meta_sizes(module) -> tuple[int, int, int | None]:
    """Input, parameter and output element counts without allocating (the output when the model
    runs on the meta device; distributions skip argument checks, which need real values)."""
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        with torch.device("meta"):
            inputs = module.get_inputs()
            model = module.Model(*module.get_init_inputs())
            try:
                with torch.no_grad():
                    out = model(*inputs)
                n_out = _numel(out if isinstance(out, (tuple, list)) else [out])
            except Exception:  # some ops have no meta kernel: the real run still bounds time
                n_out = None
        return _numel(inputs), _numel(model.parameters()), n_out
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)


def measure(task: Task, overrides: dict[str, int], budget: Budget) -> tuple[bool, str]:
    """Check a preset: sizes on the meta device first, then real runs (best of three after a warm-up,
    so the choice does not depend on a cold first call)."""
    module = task.with_sizes(_probe=overrides).materialise("_probe")
    n_in, n_par, n_out = _meta_sizes(module)
    if n_in > budget.max_input_elements or n_par > budget.max_param_elements or (n_out or 0) > budget.max_output_elements:
        return False, f"too large: {n_in} input, {n_par} parameter, {n_out} output elements"
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs())
    inputs = module.get_inputs()
    best = math.inf
    with torch.no_grad():
        for _ in range(4):
            start = time.perf_counter()
            model(*inputs)
            best = min(best, time.perf_counter() - start)
            if best > budget.max_seconds:
                break
    if best > budget.max_seconds:
        return False, f"too slow: reference took {best:.2f}s"
    return True, ""


def shrink(task: Task, budget: Budget = Budget()) -> Task:
    """Return ``task`` with a verified ``small`` preset, or raise :class:`NotShrinkable`."""
    if task.has_size(SMALL):
        return task
    constants = task.constants()
    largest = max([v for n, v in constants.items() if v >= MIN_SCALED and not STRUCTURAL.search(n)], default=1)
    best: dict[str, int] | None = None
    first_error, last_error, failures = "", "no size constant could be scaled", 0
    seen: set[tuple] = set()
    for shift in range(math.ceil(math.log2(largest)), -1, -1):  # aggressive -> mild
        overrides = scaled_constants(constants, shift)
        key = tuple(sorted(overrides.items()))
        if key in seen:
            continue
        seen.add(key)
        try:
            fits, why = measure(task, overrides, budget)
        except Exception as exc:  # an invalid preset: a milder one may be valid
            failures += 1
            last_error = f"reference failed at {overrides or 'the original sizes'}: {type(exc).__name__}: {exc}"
            first_error = first_error or last_error
            continue
        if not fits:
            last_error = f"{why} at {overrides or 'the original sizes'}"
            break
        best = overrides
    if best is None:
        if failures and failures == len(seen):
            raise NotShrinkable(f"{task.id}: not shrinkable: the reference failed at all {failures} presets; "
                                f"first: {first_error}")
        raise NotShrinkable(f"{task.id}: not shrinkable: {last_error}")
    return task.with_sizes(**{SMALL: best})
