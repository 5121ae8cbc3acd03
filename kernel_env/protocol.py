"""The only language the trusted evaluator and the sandbox share: typed requests, limits, event kinds.

The trusted side builds a request and sends ``to_wire()`` (a JSON header); the worker rebuilds it with
``request_from_wire``, which validates, because the header arrived over a pipe. Events flow back as
JSON headers whose ``event`` is one of the kinds below; the trusted side parses them in one place
(``kernel_env.evaluator.report``). Plain data only: no torch, so both sides can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from math import fsum, isfinite, sqrt  # bound here: the stopping rule runs beside candidate code
from statistics import median, stdev
from typing import ClassVar

BACKENDS = ("cuda", "interpreter")
#: What the reference is timed as: the task's eager ``Model``, or ``torch.compile(Model)``.
BASELINES = ("eager", "compile")

#: Input distributions: variants probe for statistical shortcuts; the sandbox implements them.
VARIANTS = ("normal", "scaled", "shifted", "heavy")
#: The precisions a task can run at (``RunRequest.dtype``): short name -> torch dtype attribute.
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class ProtocolError(ValueError):
    """A request or event that does not follow this protocol."""


# -- requests ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What one evaluation may use; the worker enforces each (rlimits, its own watch, its clock)."""

    timeout_s: float
    cpu_time_s: int
    memory_mb: int
    max_processes: int
    max_output_mb: int
    max_result_mb: int


@dataclass(frozen=True)
class StoppingRule:
    """When the timed calls have said enough (GPU MODE's rule): never before ``min_iters``; after that,
    once the standard error of their mean is below ``rel_se`` of their median, or once they have taken
    ``cap_s`` seconds in all; always at ``max_iters``. A pure function of the measured times (the cap
    too: the sum of the calls' own times, not wall time), so the trusted side replays it exactly on the
    times a run reports and checks the number of calls it made."""

    max_iters: int
    min_iters: int
    rel_se: float = 0.01
    cap_s: float | None = None

    def __post_init__(self):
        if not 1 <= self.min_iters <= self.max_iters:
            raise ProtocolError(f"timing needs 1 <= min_iters <= iters, got {self.min_iters} and {self.max_iters}")
        if not (isfinite(self.rel_se) and self.rel_se >= 0) or (self.cap_s is not None and not self.cap_s > 0):
            raise ProtocolError(f"timing needs rel_se >= 0 and cap_s > 0, got {self.rel_se} and {self.cap_s}")

    def done(self, samples_ms: Sequence[float]) -> bool:
        """Whether timing stops after these calls (their times in ms, in call order)."""
        n = len(samples_ms)
        if n >= self.max_iters:
            return True
        if n < self.min_iters:
            return False
        if not all(isfinite(x) for x in samples_ms):  # a broken clock: more of its readings tell nothing
            return True
        if self.cap_s is not None and fsum(samples_ms) / 1e3 >= self.cap_s:
            return True
        return n >= 2 and relative_standard_error(samples_ms) < self.rel_se

    def replay(self, samples_ms: Sequence[float]) -> int | None:
        """How many of these calls the rule lets run; None when it would still be going after all of them."""
        return next((n for n in range(1, len(samples_ms) + 1) if self.done(samples_ms[:n])), None)


def relative_standard_error(samples_ms: Sequence[float]) -> float:
    """Standard error of the mean over the median (finite samples): the stopping rule's measure of precision."""
    if len(samples_ms) < 2:
        return float("inf")
    middle = median(samples_ms)
    return stdev(samples_ms) / sqrt(len(samples_ms)) / middle if middle > 0 else float("inf")


#: No timed call is credited with less than this after the timer's overhead is taken off: about twice
#: the resolution of CUDA events, so a call is never faster than the clock could see.
NET_FLOOR_MS = 1e-3


def net_ms(raw_ms: float, overhead_ms: float) -> float:
    """A call's time less the timer's own overhead, never below ``NET_FLOOR_MS``."""
    return max(raw_ms - overhead_ms, NET_FLOOR_MS)


@dataclass(frozen=True)
class Timing:
    """How the timed calls run: ``warmup`` untimed calls, then up to ``iters`` timed ones, each on inputs
    of its own (``seeds``, one per call): no call sees contents another call saw, so no content cache
    can answer it. The plan always carries every seed; the run stops early by the stopping rule
    (``min_iters`` None: never, a fixed count). ``baseline`` says how the reference is timed."""

    warmup: int
    iters: int
    seeds: tuple[int, ...]
    min_iters: int | None = None
    rel_se: float = 0.01
    cap_s: float | None = None
    baseline: str = "eager"

    def __post_init__(self):
        if len(self.seeds) != self.warmup + self.iters:
            raise ProtocolError(f"timing needs {self.warmup + self.iters} seeds, got {len(self.seeds)}")
        if self.baseline not in BASELINES:
            raise ProtocolError(f"unknown timing baseline {self.baseline!r}")
        self.rule  # noqa: B018 - validates the rule's settings

    @property
    def rule(self) -> StoppingRule:
        return StoppingRule(self.iters, self.iters if self.min_iters is None else self.min_iters,
                            self.rel_se, self.cap_s)


#: Per-backend (warm-up, timed) calls for ``EvalConfig.warmup`` / ``iters`` left at None.
TIMING_DEFAULTS = {"cuda": (3, 100), "interpreter": (1, 5)}
#: Per-backend fewest timed calls before the stopping rule may end timing, for ``EvalConfig.timing_min_iters``
#: left at None. None: every call of the plan (the interpreter's few calls are a fixed count).
MIN_TIMED_DEFAULTS = {"cuda": 10, "interpreter": None}


def limits_of(config, result_mb: int | None = None) -> Limits:
    """The limits of an ``EvalConfig``; ``result_mb`` bounds what a candidate may send back."""
    return Limits(config.timeout_s, config.cpu_time_s, config.memory_mb, config.max_processes,
                  config.max_output_mb, result_mb or config.max_result_mb)


def timing_counts(config, backend: str) -> tuple[int, int]:
    """(warm-up calls, timed calls) of an ``EvalConfig`` on ``backend``."""
    warmup, iters = TIMING_DEFAULTS[backend]
    return (warmup if config.warmup is None else config.warmup, iters if config.iters is None else config.iters)


def timing_min_iters(config, backend: str) -> int:
    """The fewest timed calls of an ``EvalConfig`` on ``backend`` (at most its timed calls)."""
    iters = timing_counts(config, backend)[1]
    chosen = MIN_TIMED_DEFAULTS[backend] if config.timing_min_iters is None else config.timing_min_iters
    return iters if chosen is None else min(chosen, iters)


@dataclass(frozen=True)
class Trial:
    """One correctness call: which inputs (seed, distribution, program) and how they reach the model."""

    seed: int
    variant: str = "normal"
    program: str = "main"  # "alt" = the task's second shape
    reuse: bool = False  # refill the previous call's input tensors in place instead of new ones
    role: str = "base"  # base | extra | reuse | alt


@dataclass(frozen=True)
class WorkPlan:
    """How the run records its work: the task at its benchmark size (``full_program``), the secret
    seed of the full-size program sampling, and how many MB the full-size inputs may take."""

    full_program: str
    seed: int
    cap_mb: int


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What both kinds of run share: where, which program, which trials, under which limits."""

    kind: ClassVar[str] = ""
    backend: str
    device: str
    program: str
    alt_program: str | None
    trials: tuple[Trial, ...]
    init_seed: int
    timing: Timing | None
    limits: Limits
    fingerprint_key: int = 0  # sample positions of timed-output fingerprints (secret per seed set)
    work: WorkPlan | None = None  # record the work done, for the modelled GPU time (interpreter)
    slots: bool = False  # ask for the device's slot: shared from the start, exclusive from timing on
    dtype: str = "fp32"  # floating inputs, parameters and buffers are cast to this (kernel_env.scoring.tolerance)
    backward: bool = False  # a backward task: every call also returns the gradients (see inside.steps)
    grad_params: tuple[str, ...] = ()  # candidate runs: the reference's parameters, whose gradients are checked

    def to_wire(self) -> dict:
        header = asdict(self)
        header["kind"] = self.kind
        return header


@dataclass(frozen=True, kw_only=True)
class ReferenceRequest(RunRequest):
    """Run the task's ``Model`` on every trial of the plan and time it."""

    kind: ClassVar[str] = "reference"


@dataclass(frozen=True, kw_only=True)
class CandidateRequest(RunRequest):
    """Import the submission and run it through every check."""

    kind: ClassVar[str] = "candidate"
    code: str
    kernel_names: tuple[str, ...] = ()
    profile: bool = False
    known_compile_keys: tuple[str, ...] = ()  # GPU-target compiles the trusted side already holds


REQUESTS = {cls.kind: cls for cls in (ReferenceRequest, CandidateRequest)}
#: The header that tells a worker to exit, and the one that lets a run waiting for its slot go on.
SHUTDOWN, GRANT = "shutdown", "grant"
#: The device slot a run asks for, in this order (``RunRequest.slots``): alone while its timer
#: calibrates, shared with other runs for import and checks, alone from its timing stage to its end.
SLOT_ORDER = ("exclusive", "shared", "exclusive")


def request_from_wire(header: dict) -> RunRequest:
    """Rebuild a request from its header; anything missing or mistyped raises ProtocolError."""
    cls = REQUESTS.get(header.get("kind"))
    if cls is None:
        raise ProtocolError(f"unknown request kind {header.get('kind')!r}")
    try:
        values = {f.name: header[f.name] for f in fields(cls) if f.name in header}
        values["trials"] = tuple(Trial(**t) for t in header["trials"])
        values["limits"] = Limits(**header["limits"])
        timing = header.get("timing")
        values["timing"] = None if timing is None else Timing(**{**timing, "seeds": tuple(timing["seeds"])})
        for name in ("kernel_names", "known_compile_keys", "grad_params"):
            if name in values:
                values[name] = tuple(values[name])
        if values.get("work") is not None:
            values["work"] = WorkPlan(**values["work"])
        request = cls(**values)
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed {cls.kind} request: {exc}") from exc
    if request.backend not in BACKENDS:
        raise ProtocolError(f"unknown backend {request.backend!r}")
    return request


# -- events --------------------------------------------------------------------------------------

class Event:
    """The ``event`` field of every frame that comes back."""

    STAGE = "stage"  # a pipeline stage begins: {"stage": name}
    COMPILED = "compiled"  # the submission imported and ModelNew was built
    TRIAL = "trial"  # one correctness call's outputs, input digests, launches, host time
    GRAD_LAUNCHES = "grad_launches"  # own launches of the call made with autograd enabled
    HACK = "hack"  # an in-process watcher saw something: {"code", "detail"}
    TIMING_BEGIN = "timing_begin"
    TIMING_END = "timing_end"  # the timed calls' records
    TICK = "tick"  # right before and right after one timed call: the worker's clock brackets it
    PROFILE = "profile"  # profiler coverage (CUDA)
    GHOST = "ghost"  # one ghost replay's outputs
    GPU_COMPILE = "gpu_compile"  # own kernels compiled for a GPU target: {"records", "reused", ...}
    WORK = "work"  # recorded work of one call: {"size": "small" | "full", "records" | "error" | "skipped"}
    ERROR = "error"  # the run failed: {"stage", "message", "where"}
    DONE = "done"  # the run finished: {"forward_s"}
    SLOT = "slot"  # the run waits for its device's slot: {"mode": "shared" | "exclusive"}
    READY = "ready"  # worker only: started and warm
    EXIT = "exit"  # worker only: the evaluation's process ended (see Killed)


#: What an evaluation's process may say. A child that sends anything else (a worker-only event
#: included) is trying to speak for the worker, and is killed for it.
CHILD_EVENTS = frozenset({Event.STAGE, Event.COMPILED, Event.TRIAL, Event.GRAD_LAUNCHES, Event.HACK,
                          Event.TIMING_BEGIN, Event.TICK, Event.TIMING_END, Event.PROFILE, Event.GHOST,
                          Event.GPU_COMPILE, Event.WORK, Event.ERROR, Event.DONE, Event.SLOT})


class Killed:
    """Why the worker killed an evaluation (the ``killed_for`` field of its exit event)."""

    TIMEOUT = "timeout"
    MEMORY = "memory"
    PROCESSES = "processes"
    RESULT = "result"  # sent more bytes than the result limit
    PROTOCOL = "protocol"  # sent a frame only the worker may send, or a malformed one
