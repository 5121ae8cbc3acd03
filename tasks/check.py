"""Validate a task by running its reference: does it run, and is its output worth checking against?

A reference whose output barely changes across seeds lets a constant answer pass the tolerance
check (hack 15 in the catalogue), and an input the output ignores cannot be tested by it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from .task import Task

#: The evaluator's default tolerance: outputs this close would be indistinguishable to it.
ATOL = RTOL = 1e-2


@dataclass
class TaskReport:
    task_id: str
    size: str
    ok: bool = False
    seconds: float | None = None
    outputs: list[str] = field(default_factory=list)  # "float32[16, 256]" per output
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def run_reference(module, seed: int, replace_input: int | None = None) -> tuple[list, float]:
    """Build Model with ``seed`` and time a warm call on inputs drawn with ``seed`` (no grad)."""
    torch.manual_seed(seed)
    inputs = module.get_inputs()
    if replace_input is not None:
        torch.manual_seed(seed + 7919)
        inputs[replace_input] = torch.randn_like(inputs[replace_input])
    torch.manual_seed(seed)
    model = module.Model(*module.get_init_inputs())
    with torch.no_grad():
        model(*inputs)  # warm-up: first calls pay for lazy initialisation, not for the task
        start = time.perf_counter()
        out = model(*inputs)
    return _as_list(out), time.perf_counter() - start


def _close(a: list, b: list) -> bool:
    return all(
        torch.allclose(x.double(), y.double(), atol=ATOL, rtol=RTOL, equal_nan=True)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
        else False
        for x, y in zip(a, b)
    )


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__


def check_task(task: Task, size: str = "small", seeds: tuple[int, int] = (0, 1)) -> TaskReport:
    report = TaskReport(task.id, size)
    try:
        module = task.materialise(size)
        first, report.seconds = run_reference(module, seeds[0])
        second, _ = run_reference(module, seeds[1])
    except Exception as exc:  # a report, not a crash: the user checks many tasks at once
        report.problems.append(f"reference failed: {type(exc).__name__}: {exc}")
        return report
    report.outputs = [_describe(o) for o in first]
    if not all(isinstance(o, torch.Tensor) for o in first):
        report.problems.append("output is not a tensor (or tuple of tensors)")
        return report
    if not all(torch.isfinite(o).all() for o in first if o.is_floating_point()):
        report.problems.append("reference output has NaN or Inf")
    if _close(first, second):
        report.problems.append(
            f"near-constant output across seeds (within atol=rtol={ATOL}): a constant answer would pass"
        )
    else:
        torch.manual_seed(seeds[0])
        inputs = module.get_inputs()
        for i, x in enumerate(inputs):
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                changed, _ = run_reference(module, seeds[0], replace_input=i)
                if _close(first, changed):
                    report.problems.append(f"output does not depend on input {i}: it cannot be checked")
    report.ok = not report.problems
    return report
