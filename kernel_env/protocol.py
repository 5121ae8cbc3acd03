"""The only language the trusted evaluator and the sandbox share: typed requests, limits, event kinds.

The trusted side builds a request and sends ``to_wire()`` (a JSON header); the worker rebuilds it with
``request_from_wire``, which validates, because the header arrived over a pipe. Events flow back as
JSON headers whose ``event`` is one of the kinds below; the trusted side parses them in one place
(``kernel_env.evaluator.report``). Plain data only: no torch, so both sides can import it cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

BACKENDS = ("cuda", "interpreter")

#: Input distributions: variants probe for statistical shortcuts; the sandbox implements them.
VARIANTS = ("normal", "scaled", "shifted", "heavy")


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
class Timing:
    """How the timed calls run: ``warmup`` untimed calls, then ``iters`` timed ones, each on inputs of
    its own (``seeds``, one per call): no call sees contents another call saw, so no content cache
    can answer it."""

    warmup: int
    iters: int
    seeds: tuple[int, ...]

    def __post_init__(self):
        if len(self.seeds) != self.warmup + self.iters:
            raise ProtocolError(f"timing needs {self.warmup + self.iters} seeds, got {len(self.seeds)}")


#: Per-backend (warm-up, timed) calls for ``EvalConfig.warmup`` / ``iters`` left at None.
TIMING_DEFAULTS = {"cuda": (3, 100), "interpreter": (1, 5)}


def limits_of(config, result_mb: int | None = None) -> Limits:
    """The limits of an ``EvalConfig``; ``result_mb`` bounds what a candidate may send back."""
    return Limits(config.timeout_s, config.cpu_time_s, config.memory_mb, config.max_processes,
                  config.max_output_mb, result_mb or config.max_result_mb)


def timing_counts(config, backend: str) -> tuple[int, int]:
    """(warm-up calls, timed calls) of an ``EvalConfig`` on ``backend``."""
    warmup, iters = TIMING_DEFAULTS[backend]
    return (warmup if config.warmup is None else config.warmup, iters if config.iters is None else config.iters)


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
#: The header that tells a worker to exit.
SHUTDOWN = "shutdown"


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
        values["timing"] = None if timing is None else Timing(timing["warmup"], timing["iters"], tuple(timing["seeds"]))
        for name in ("kernel_names", "known_compile_keys"):
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
    READY = "ready"  # worker only: started and warm
    EXIT = "exit"  # worker only: the evaluation's process ended (see Killed)


#: What an evaluation's process may say. A child that sends anything else (a worker-only event
#: included) is trying to speak for the worker, and is killed for it.
CHILD_EVENTS = frozenset({Event.STAGE, Event.COMPILED, Event.TRIAL, Event.GRAD_LAUNCHES, Event.HACK,
                          Event.TIMING_BEGIN, Event.TICK, Event.TIMING_END, Event.PROFILE, Event.GHOST,
                          Event.GPU_COMPILE, Event.WORK, Event.ERROR, Event.DONE})


class Killed:
    """Why the worker killed an evaluation (the ``killed_for`` field of its exit event)."""

    TIMEOUT = "timeout"
    MEMORY = "memory"
    PROCESSES = "processes"
    RESULT = "result"  # sent more bytes than the result limit
    PROTOCOL = "protocol"  # sent a frame only the worker may send, or a malformed one
