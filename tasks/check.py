"""Validate a task by running its reference: does it run, and is its output worth checking against?

A reference whose output barely changes across seeds lets a constant answer pass the tolerance
check (hack 15 in the catalogue), and an input the output ignores cannot be tested by it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch

from .loaders import go_offline_if_unreachable, hub_unavailable, needs_hub
from .shrink import NotShrinkable, shrink
from .task import SMALL, Task, declares_backward


def _allclose(a: list, b: list, atol: float = 1e-2, rtol: float = 1e-2) -> bool:
    return len(a) == len(b) and all(
        isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
        and torch.allclose(x.double(), y.double(), atol=atol, rtol=rtol, equal_nan=True)
        for x, y in zip(a, b))


@dataclass(frozen=True)
class Judged:
    """How outputs are told apart, and at which precision the reference runs. ``tasks`` cannot know
    the evaluator's comparison (it depends on nothing of kernel_env), so ``kernel-env tasks check``
    passes it in (``kernel_env.scoring.tolerance.compare`` under the chosen preset, scale-aware);
    the default is a plain ``allclose`` at 1e-2."""

    close: Callable[[list, list], bool] = _allclose
    dtype: torch.dtype = torch.float32
    name: str = "atol=rtol=1e-2"


#: How long ``tasks check`` gives one task (shrinking included) before reporting it and moving on.
TASK_TIMEOUT_S = 60.0


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


def _inputs(module, seed: int, dtype: torch.dtype = torch.float32) -> list:
    """The task's inputs for ``seed``, floating ones at ``dtype`` (as the evaluator casts them)."""
    torch.manual_seed(seed)
    inputs = list(module.get_inputs())
    if dtype is torch.float32:
        return inputs
    return [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]


def _probes(module, seed: int, index: int) -> list:
    """Other values for input ``index`` that a model following it must answer differently to:
    a fresh draw by ``get_inputs`` itself (same distribution, dtype and range: ``torch.rand`` stays
    in [0, 1), class targets stay class indices) and, for a floating input, standard normal values
    (another distribution, as the evaluator's input variants use: a mean over many elements does
    not follow a redraw within tolerance, yet it follows the input). An input that ``get_inputs``
    returns the same every time has nothing to vary: no probes."""
    x = _inputs(module, seed)[index]
    redrawn = _inputs(module, seed + 7919)[index]
    if not isinstance(x, torch.Tensor) or (x.shape == redrawn.shape and torch.equal(x, redrawn)):
        return []
    if not x.is_floating_point():
        return [redrawn]
    torch.manual_seed(seed + 7919)
    return [redrawn, torch.randn_like(x)]


def run_reference(module, seed: int, replace: dict | None = None, dtype: torch.dtype = torch.float32,
                  backward: bool = False) -> tuple[list, float]:
    """Build Model with ``seed`` and time a warm call on inputs drawn with ``seed`` (no grad), with
    the inputs ``replace`` maps by index swapped in, the model and floating inputs at ``dtype``."""
    inputs = _inputs(module, seed, dtype)
    for i, value in (replace or {}).items():
        inputs[i] = value.to(dtype) if value.is_floating_point() else value
    torch.manual_seed(seed)
    model = module.Model(*module.get_init_inputs())
    if dtype is not torch.float32:
        model = model.to(dtype)
    with torch.no_grad():
        model(*inputs)  # warm-up: first calls pay for lazy initialisation, not for the task
        start = time.perf_counter()
        out = model(*inputs)
    seconds = time.perf_counter() - start
    if backward:  # a backward task's gradients are checked too: they must be worth checking
        return _with_gradients(model, inputs, seed), seconds
    return _as_list(out), seconds


def _with_gradients(model, inputs: list, seed: int) -> list:
    """A backward task's values as the evaluator sees them: the outputs, then the gradients of every
    floating input and parameter against standard-normal upstream gradients (zeros where unused)."""
    leaves = [x.detach().requires_grad_() if isinstance(x, torch.Tensor) and x.is_floating_point() else x
              for x in inputs]
    wrt = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad]
    wrt += [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        outs = [o for o in _as_list(model(*leaves)) if isinstance(o, torch.Tensor) and o.is_floating_point()]
    gen = torch.Generator().manual_seed(seed)
    upstream = [torch.randn(o.shape, generator=gen).to(o.dtype) for o in outs]
    grads = torch.autograd.grad(outs, wrt, upstream, allow_unused=True)
    return [o.detach() for o in outs] + [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__


def check_task(task: Task, size: str = "small", seeds: tuple[int, int] = (0, 1),
               judged: Judged = Judged()) -> TaskReport:
    """Run the reference at ``size`` and report what would make it unusable: a failure, NaN/Inf,
    an output that a constant answer matches (``judged.close``), or an input the output does not
    follow (no probe of it, see :func:`_probes`, changes what the comparison can see)."""
    dtype = judged.dtype
    report = TaskReport(task.id, size)
    try:
        module = task.materialise(size)
        backward = declares_backward(task.program(size))
        first, report.seconds = run_reference(module, seeds[0], dtype=dtype, backward=backward)
        second, _ = run_reference(module, seeds[1], dtype=dtype, backward=backward)
    except Exception as exc:  # a report, not a crash: the user checks many tasks at once
        report.problems.append(f"reference failed: {type(exc).__name__}: {exc}")
        return report
    report.outputs = [_describe(o) for o in first]
    if not all(isinstance(o, torch.Tensor) for o in first):
        report.problems.append("output is not a tensor (or tuple of tensors)")
        return report
    if not all(torch.isfinite(o).all() for o in first if o.is_floating_point()):
        report.problems.append("reference output has NaN or Inf")
    constant = [i for i, (a, b) in enumerate(zip(first, second)) if judged.close([a], [b])]
    if constant:  # one such value is enough: a constant answers it, whatever the others need
        which = "" if len(first) == 1 else f" (value{'s' if len(constant) > 1 else ''} {', '.join(map(str, constant))})"
        report.problems.append(f"near-constant output across seeds{which} (within {judged.name}): "
                               "a constant answer would pass")
    else:
        for i in range(len(_inputs(module, seeds[0]))):
            probes = _probes(module, seeds[0], i)
            if probes and all(judged.close(first, run_reference(module, seeds[0], {i: p}, dtype, backward)[0]) for p in probes):
                report.problems.append(f"output does not depend on input {i}: it cannot be checked")
    report.ok = not report.problems
    return report


class TaskTimeout(BaseException):
    """A task ran past its time limit. Not an ``Exception``: the handlers that turn a failing preset
    or reference into a report must not swallow it."""


@contextmanager
def time_limit(seconds: float | None):
    """Interrupt the block after ``seconds`` with :class:`TaskTimeout` (SIGALRM, so only in the main
    thread of a Unix process; elsewhere, or with no limit, the block runs unbounded). A single long
    native call is interrupted when it returns to Python."""
    usable = seconds and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise TaskTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_one(task: Task, size: str = SMALL, timeout_s: float | None = TASK_TIMEOUT_S,
              judged: Judged = Judged()) -> TaskReport:
    """Shrink (for ``small``) and check one task within ``timeout_s``; every outcome is a report
    whose problems say in one line why the task is not usable."""
    if why := hub_unavailable(task):
        return TaskReport(task.id, size, problems=[f"skipped: {why}"])
    try:
        with time_limit(timeout_s):
            return check_task(shrink(task) if size == SMALL else task, size, judged=judged)
    except NotShrinkable as exc:
        return TaskReport(task.id, size, problems=[str(exc).split(": ", 1)[-1]])
    except TaskTimeout:
        return TaskReport(task.id, size, problems=[f"timed out after {timeout_s:g} s"])


def check_tasks(tasks: Iterable[Task], size: str = SMALL, timeout_s: float | None = TASK_TIMEOUT_S,
                judged: Judged = Judged()) -> Iterator[TaskReport]:
    """:func:`check_one` for each task, in order, as each finishes. When a task needs the Hugging
    Face hub and it cannot be reached, the hub libraries are told they are offline first."""
    tasks = list(tasks)
    if any(needs_hub(t) for t in tasks):
        go_offline_if_unreachable()
    for task in tasks:
        yield check_one(task, size, timeout_s, judged)
