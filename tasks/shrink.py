"""Make benchmark-scale KernelBench programs runnable on a CPU by scaling their size constants.

External files carry only benchmark sizes (ReLU is 4096 x 393216 floats). We divide every large
module-level integer constant by a common power of two, keep the divisibility relations the file
has (channels % groups, embed % heads, ...), and verify each candidate preset by building the
reference and running it once. Presets are tried from the most aggressive to the mildest; the
mildest that fits the budget wins, because larger problems exercise kernels more honestly.

Networks that write their sizes inside the code (VGG's ``nn.Conv2d(256, 512, 3)``, an input of
``torch.rand(n, 3, 224, 224)``) need more: when no constants-only preset fits, later rounds also
scale those literals (see :mod:`tasks.widths`), cap the batch, shrink the layer widths by a common
factor and, last, scale group counts with the channels they divide.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, replace

import torch

from .task import LITERAL_KEY, SMALL, Task, TaskError
from .widths import Literals, find_literals

#: Constants below this are shapes' small parts (kernel sizes, strides, dims to reduce): never scaled.
MIN_SCALED = 8
#: Structural constants keep their value whatever their size: they define the model, not its scale.
#: Divisors whose quotient is a per-group width: that width must not collapse to one.
PER_GROUP = re.compile(r"group|head", re.I)
#: What group and head counts divide; other multiples of them (a batch of 64 with 8 groups) are chance.
CHANNEL_LIKE = re.compile(r"chan|feat|embed|dim|hidden|model|n_embd", re.I)
STRUCTURAL = re.compile(r"group|head|kernel|stride|pad|dilation|layers", re.I)
#: What stays fixed when group and head counts are allowed to scale (the last resort).
GEOMETRY = re.compile(r"kernel|stride|pad|dilation|layers", re.I)
BATCH = re.compile(r"batch", re.I)
#: The batch a later round caps batch constants at: two rows still catch batch-indexing bugs.
SMALL_BATCH = 2


@dataclass(frozen=True)
class Budget:
    """What a ``small`` preset may cost: element counts on the meta device, then a real run."""

    max_input_elements: int = 1 << 16
    max_output_elements: int = 1 << 16
    max_param_elements: int = 1 << 18
    max_seconds: float = 0.5
    #: How far the input limit stretches for a network that fixes its input resolution (AlexNet's
    #: ``256 * 6 * 6`` classifier, MobileNet's ``AvgPool2d(7)``, Swin's windows need 224 x 224).
    fixed_resolution_factor: int = 8

    def for_fixed_resolution(self) -> "Budget":
        return replace(self, max_input_elements=self.max_input_elements * self.fixed_resolution_factor)


class NotShrinkable(TaskError):
    """No scaled preset runs the reference within the budget; the message says why."""


class MissingPackage(NotShrinkable):
    """The reference imports a package that is not installed: no preset can help."""


def scaled_constants(constants: dict[str, int], shift: int, batch: int | None = None,
                     groups: bool = False, wide: Collection[str] = (), extra: int = 0) -> dict[str, int]:
    """Divide each large constant by ``2**shift``, then restore divisibility relations.

    If ``a % b == 0`` in the original and ``b`` is a fixed constant (a group or head count, a kernel
    size), the result keeps ``a`` a multiple of ``b``; for group and
    head counts, at least ``min(a/b, 4)`` times ``b``: channels per group or per head must not collapse
    to one (a GroupNorm over single channels outputs zeros).

    ``batch`` caps batch constants (the batch does not shape the kernel, the other sizes do);
    ``groups`` lets group and head counts scale too, so the channels per group stay as written
    when the channels could not otherwise shrink (512 groups of 16 features: 32 groups of 16);
    the ``wide`` constants (layer widths) are divided ``extra`` more times, for networks whose
    spatial sizes cannot shrink as far as their widths must (pooling stages need a minimum).
    """
    fixed = GEOMETRY if groups else STRUCTURAL
    scaled = {n: max(2, round(v / (1 << (shift + (extra if n in wide else 0))))) for n, v in constants.items()
              if v >= MIN_SCALED and not fixed.search(n)}
    if batch is not None:
        scaled.update({n: min(v, batch) for n, v in constants.items() if BATCH.search(n) and v > batch})
    new = {**constants, **scaled}
    relations = [
        (a, b)
        for a, va in constants.items()
        for b, vb in constants.items()
        if a != b and a in scaled and b not in scaled and vb > 1 and va % vb == 0 and va >= vb
        and (not PER_GROUP.search(b) or CHANNEL_LIKE.search(a)) and not (batch and BATCH.search(a))
    ]  # only relations to fixed constants: a common power-of-two scale keeps the others; a capped
    # batch that a kernel size divides does so by chance
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


def _meta_sizes(module) -> tuple[int, int | None, int | None]:
    """Input, parameter and output element counts without allocating (the output when the model
    runs on the meta device; distributions skip argument checks, which need real values). A model
    whose construction needs real values (Swin's ``x.item()`` on a ``linspace``) is counted later,
    on the real build."""
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        with torch.device("meta"):
            inputs = module.get_inputs()
            try:
                model = module.Model(*module.get_init_inputs())
            except Exception:
                return _numel(inputs), None, None
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
    """Check a preset: sizes on the meta device first, then real runs (best of up to three after a
    warm-up, so the choice depends neither on a cold first call nor on one slowed by other load)."""
    module = task.with_sizes(_probe=overrides).materialise("_probe")
    n_in, n_par, n_out = _meta_sizes(module)

    def too_large() -> bool:
        return (n_in > budget.max_input_elements or (n_par or 0) > budget.max_param_elements
                or (n_out or 0) > budget.max_output_elements)

    if too_large():
        return False, f"too large: {n_in} input, {n_par} parameter, {n_out} output elements"
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs())
    n_par = _numel(model.parameters()) if n_par is None else n_par
    if too_large():
        return False, f"too large: {n_in} input, {n_par} parameter, {n_out} output elements"
    inputs = module.get_inputs()
    best = math.inf
    with torch.no_grad():
        model(*inputs)  # warm-up: lazy initialisation is not the task's cost
        for _ in range(3):  # a busy machine slows single calls: the best call decides
            start = time.perf_counter()
            model(*inputs)
            best = min(best, time.perf_counter() - start)
            if best <= budget.max_seconds or best > 10 * budget.max_seconds:
                break
    if best > budget.max_seconds:
        return False, f"too slow: reference took {best:.2f}s"
    return True, ""


def _shifts(constants: dict[str, int], groups: bool = False) -> range:
    """Shifts from the most aggressive (every scaled constant at its floor) to none."""
    fixed = GEOMETRY if groups else STRUCTURAL
    largest = max([v for n, v in constants.items() if v >= MIN_SCALED and not fixed.search(n)], default=1)
    return range(math.ceil(math.log2(largest)), -1, -1)


def _rounds(task: Task, literals: Literals):
    """Candidate presets in rounds, each from the most aggressive to the mildest. A round is tried
    only when no preset of the earlier ones fits: first the module constants alone (all a file that
    keeps its sizes there needs), then the literal sizes and layer widths too, with the batch
    capped: all by the same factor so the network keeps its proportions, then the widths by 2, 4,
    ... times more; at each, with group counts fixed, then scaling too."""
    constants = task.constants()
    yield [scaled_constants(constants, s) for s in _shifts(constants)]
    sizes = {**constants, **literals.sizes, **literals.widths}
    wide = {*literals.widths, *literals.wide}
    widest = max([sizes[n] for n in wide], default=1)
    counts = {n for n in sizes if PER_GROUP.search(n)}  # scaling, group and head counts follow the widths
    for extra in range(math.ceil(math.log2(widest)) + 1):
        for groups in (False, True):
            follow = wide | counts if groups else wide
            yield [literals.fit(scaled_constants(sizes, s, SMALL_BATCH, groups, follow, extra))
                   for s in _shifts(sizes, groups)]


def describe(overrides: dict[str, int]) -> str:
    """A preset in one short phrase: its named constants, and how many literals it sets."""
    named = {k: v for k, v in overrides.items() if not LITERAL_KEY.search(k)}
    n = len(overrides) - len(named)
    parts = ([str(named)] if named else []) + ([f"{n} literals"] if n else [])
    return " and ".join(parts) or "the original sizes"


def shrink(task: Task, budget: Budget = Budget()) -> Task:
    """Return ``task`` with a verified ``small`` preset, or raise :class:`NotShrinkable`."""
    if task.has_size(SMALL):
        return task
    literals = find_literals(task.source)
    first, failed = None, {}
    for limits in (budget, budget.for_fixed_resolution()):  # the larger input only when nothing else fits
        try:
            return task.with_sizes(**{SMALL: _search(task, literals, limits, failed)})
        except MissingPackage:
            raise
        except NotShrinkable as exc:
            first = first or exc
    raise first


def _search(task: Task, literals: Literals, budget: Budget, failed: dict[tuple, str]) -> dict[str, int]:
    """The mildest preset of the first round that has one within ``budget``. ``failed`` keeps the
    presets whose reference raised, and why: a larger budget does not make them run."""
    first_error, last_error, failures = "", "no size constant could be scaled", 0
    seen: set[tuple] = set()
    for presets in _rounds(task, literals):
        best: dict[str, int] | None = None
        for overrides in presets:  # aggressive -> mild
            key = tuple(sorted(overrides.items()))
            if key in seen:
                continue
            seen.add(key)
            if key not in failed:
                try:
                    fits, why = measure(task, overrides, budget)
                except ImportError as exc:  # no preset helps a missing package
                    raise MissingPackage(f"{task.id}: not shrinkable: needs the {exc.name or exc} package "
                                         f"({type(exc).__name__}: {exc})") from exc
                except Exception as exc:  # an invalid preset: a milder one may be valid
                    failed[key] = f"{type(exc).__name__}: {exc}"
            if key in failed:
                failures += 1
                last_error = f"reference failed at {describe(overrides)}: {failed[key]}"
                first_error = first_error or last_error
                continue
            if not fits:
                last_error = f"{why} at {describe(overrides)}"
                break
            best = overrides
        if best is not None:
            return best
    if failures and failures == len(seen):
        raise NotShrinkable(f"{task.id}: not shrinkable: the reference failed at all {failures} presets; "
                            f"first: {first_error}")
    raise NotShrinkable(f"{task.id}: not shrinkable: {last_error}")
