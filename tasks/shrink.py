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
STRUCTURAL = re.compile(r"group|head|kernel|stride|pad|dilation|layers", re.I)


@dataclass(frozen=True)
class Budget:
    """What a ``small`` preset may cost: element counts on the meta device, then a real run."""

    max_input_elements: int = 1 << 16
    max_param_elements: int = 1 << 18
    max_seconds: float = 0.5


class NotShrinkable(TaskError):
    """No scaled preset runs the reference within the budget; the message says why."""


def scaled_constants(constants: dict[str, int], shift: int) -> dict[str, int]:
    """Divide each large constant by ``2**shift``, then restore divisibility relations.

    If ``a % b == 0`` in the original (b > 1), the result keeps ``a`` a multiple of ``b``.
    """
    scaled = {n: max(1, round(v / (1 << shift))) for n, v in constants.items()
              if v >= MIN_SCALED and not STRUCTURAL.search(n)}
    new = {**constants, **scaled}
    relations = [
        (a, b)
        for a, va in constants.items()
        for b, vb in constants.items()
        if a != b and a in scaled and vb > 1 and va % vb == 0 and va >= vb
    ]
    for _ in range(len(relations) + 1):  # a fixed point is reached in few passes
        changed = False
        for a, b in relations:
            if new[a] % new[b]:
                new[a] = max(new[b], math.ceil(new[a] / new[b]) * new[b])
                changed = True
        if not changed:
            break
    return {n: v for n, v in new.items() if v != constants[n]}


def _numel(values) -> int:
    return sum(v.numel() for v in values if isinstance(v, torch.Tensor))


def measure(task: Task, overrides: dict[str, int], budget: Budget) -> tuple[bool, str]:
    """Check a preset: sizes on the meta device first (no allocation), then one real run."""
    probe = task.with_sizes(_probe=overrides)
    module = probe.materialise("_probe")
    with torch.device("meta"):
        inputs = module.get_inputs()
        model = module.Model(*module.get_init_inputs())
    n_in, n_par = _numel(inputs), _numel(model.parameters())
    if n_in > budget.max_input_elements or n_par > budget.max_param_elements:
        return False, f"too large: {n_in} input and {n_par} parameter elements"
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs())
    inputs = module.get_inputs()
    start = time.perf_counter()
    with torch.no_grad():
        model(*inputs)
    seconds = time.perf_counter() - start
    if seconds > budget.max_seconds:
        return False, f"too slow: reference took {seconds:.2f}s"
    return True, ""


def shrink(task: Task, budget: Budget = Budget()) -> Task:
    """Return ``task`` with a verified ``small`` preset, or raise :class:`NotShrinkable`."""
    if task.has_size(SMALL):
        return task
    constants = task.constants()
    largest = max([v for n, v in constants.items() if v >= MIN_SCALED and not STRUCTURAL.search(n)], default=1)
    best: dict[str, int] | None = None
    last_error = "no size constant could be scaled"
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
            last_error = f"reference failed at {overrides or 'the original sizes'}: {type(exc).__name__}: {exc}"
            continue
        if not fits:
            last_error = f"{why} at {overrides or 'the original sizes'}"
            break
        best = overrides
    if best is None:
        raise NotShrinkable(f"{task.id}: not shrinkable: {last_error}")
    return task.with_sizes(**{SMALL: best})
