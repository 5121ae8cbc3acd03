"""The one parser for what a sandboxed run sent back: an event stream becomes a ``RunReport``.

The events come from an untrusted process (relayed and time-stamped by the worker), so every field
is read defensively here; a stream that breaks the protocol raises ``MalformedReport``. Tensors stay
packed until the judge unpacks the ones it compares.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch

from .. import wire
from ..protocol import Event


class MalformedReport(ValueError):
    """The run sent events no honest run sends (out of range, repeated, mistyped)."""


@dataclass
class Packed:
    """Values as the wire described them, with the blobs they point into."""

    descriptions: list
    blobs: list[bytes]

    def unpack(self) -> list:
        return [wire.unpack_value(d, self.blobs) for d in self.descriptions]


@dataclass
class TrialReport:
    index: int
    outputs: Packed
    digests: list
    types: list = field(default_factory=list)
    foreign: list = field(default_factory=list)  # outputs in memory torch did not allocate for them
    launches: int = 0
    side_launches: int = 0
    host_ms: float = 0.0


@dataclass
class GhostReport:
    index: int
    fill: str
    raised: bool
    outputs: Packed


@dataclass
class TimedCall:
    ms: float  # by the backend's clock
    host_ms: float  # by the host clock around the call
    own_ms: float  # host time inside own launches
    fingerprints: list
    launches: int | None
    external_ms: float | None = None  # by the worker's clock, between the call's two ticks
    numel: list[int] = field(default_factory=list)  # element count of each output


@dataclass
class Exit:
    """How the evaluation's process ended, as the worker (or the trusted side, for a lost worker) saw it."""

    killed_for: str | None = None
    signal: str | None = None
    exit_code: int | None = None
    worker_died: bool = False
    detail: str = ""
    log_tail: str = ""
    elapsed: float | None = None

    @property
    def abnormal(self) -> bool:
        return bool(self.killed_for or self.signal or self.worker_died)


@dataclass
class RunReport:
    compiled: bool = False
    trials: dict[int, TrialReport] = field(default_factory=dict)
    grad_launches: int | None = None
    hacks: list[tuple[str, str]] = field(default_factory=list)  # what the in-process watchers saw
    timing_window: tuple[float | None, float | None] = (None, None)  # worker clock, seconds
    timed: list[TimedCall] | None = None  # None: no timing ran
    profile: dict | None = None
    ghosts: list[GhostReport] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    exit: Exit = field(default_factory=Exit)
    done: bool = False
    forward_s: float = 0.0
    compiles: list = field(default_factory=list)  # GPU-target compile records (validated by the evaluator)
    compile_reused: list = field(default_factory=list)  # keys the sandbox skipped: the trusted side has them
    work: dict[str, dict] = field(default_factory=dict)  # "small"/"full" -> the WORK event
    stage_times: dict[str, float] = field(default_factory=dict)  # sandbox seconds per stage
    last_stage: str = "compile"

    @property
    def launches(self) -> list[int]:
        return [t.launches for t in self.trials.values()]


def parse_report(events: list[tuple[dict, list[bytes]]], n_trials: int) -> RunReport:
    """Read a run's events; ``n_trials`` is how many trial reports the request asked for."""
    try:
        return _parse(events, n_trials)
    except MalformedReport:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a field of the wrong type or missing
        raise MalformedReport(f"{type(exc).__name__}: {exc}") from exc


def _parse(events, n_trials: int) -> RunReport:
    report = RunReport()
    last_t = 0.0
    begin = end = None
    ticks: dict[int, list[float]] = {}  # timed call -> worker times of its begin and end ticks
    for event, blobs in events:
        kind = event.get("event")
        t = float(event.get("t", last_t))
        if kind == Event.STAGE:
            report.stage_times[report.last_stage] = report.stage_times.get(report.last_stage, 0.0) + t - last_t
            report.last_stage, last_t = str(event["stage"]), t
        elif kind == Event.COMPILED:
            report.compiled = True
        elif kind == Event.TRIAL:
            pos = int(event["index"])
            if not 0 <= pos < n_trials or pos in report.trials:
                raise MalformedReport(f"trial report {pos} out of range or repeated")
            report.trials[pos] = TrialReport(
                index=pos, outputs=Packed(list(event.get("outputs", [])), blobs),
                digests=list(event.get("digests", [])), types=list(event.get("types", [])),
                foreign=list(event.get("foreign") or []),
                launches=int(event.get("launches", 0)), side_launches=int(event.get("side_launches") or 0),
                host_ms=float(event.get("host_ms") or 0.0))
        elif kind == Event.GRAD_LAUNCHES:
            report.grad_launches = int(event["launches"])
        elif kind == Event.HACK:
            report.hacks.append((str(event.get("code")), str(event.get("detail", ""))))
        elif kind == Event.TIMING_BEGIN:
            begin = t
        elif kind == Event.TICK:
            ticks.setdefault(int(event["index"]), []).append(t)
        elif kind == Event.TIMING_END:
            end = t
            report.timed = [_timed_call(rec) for rec in event.get("records", [])]
            for i, call in enumerate(report.timed):
                stamps = ticks.get(i, [])
                if len(stamps) == 2:
                    call.external_ms = (stamps[1] - stamps[0]) * 1e3
        elif kind == Event.PROFILE:
            report.profile = event
        elif kind == Event.GHOST:
            report.ghosts.append(GhostReport(index=int(event.get("index", 0)), fill=str(event.get("fill", "")),
                                             raised=bool(event.get("raised")),
                                             outputs=Packed(list(event.get("outputs", [])), blobs)))
        elif kind == Event.GPU_COMPILE:
            report.compiles = list(event.get("records") or [])
            report.compile_reused = [str(k) for k in event.get("reused") or []]
        elif kind == Event.WORK:
            size = str(event.get("size"))
            if size not in ("small", "full") or size in report.work:
                raise MalformedReport(f"work report for size {size!r} unknown or repeated")
            report.work[size] = event
        elif kind == Event.ERROR:
            report.errors.append(event)
        elif kind == Event.DONE:
            report.done = True
            report.forward_s = float(event.get("forward_s", 0.0))
        elif kind == Event.EXIT:
            report.exit = _exit(event)
    report.timing_window = (begin, end)
    finish = report.exit.elapsed if report.exit.elapsed is not None else last_t
    report.stage_times[report.last_stage] = report.stage_times.get(report.last_stage, 0.0) + finish - last_t
    return report


def _timed_call(rec: dict) -> TimedCall:
    launches = rec.get("launches")
    return TimedCall(ms=float(rec["ms"]), host_ms=float(rec.get("host_ms") or 0.0),
                     own_ms=float(rec.get("own_ms") or 0.0), fingerprints=list(rec.get("fingerprints") or []),
                     numel=[int(n) for n in rec.get("numel") or []],
                     launches=None if launches is None else int(launches))


def _exit(event: dict) -> Exit:
    elapsed = event.get("elapsed")
    code = event.get("exit_code")
    return Exit(killed_for=event.get("killed_for"), signal=event.get("signal"),
                exit_code=None if code is None else int(code), worker_died=bool(event.get("worker_died")),
                detail=str(event.get("detail", "")), log_tail=str(event.get("log_tail") or ""),
                elapsed=None if elapsed is None else float(elapsed))


def lost_worker(detail: str) -> tuple[dict, list[bytes]]:
    """The exit event the trusted side adds when the worker itself died or stopped answering."""
    return {"event": Event.EXIT, "worker_died": True, "detail": detail}, []


# -- the reference side ---------------------------------------------------------------------------

@dataclass
class Reference:
    """What the reference run produced for a plan: outputs and input digests per trial, timings."""

    outputs: list[list[torch.Tensor]]
    digests: list[list[str]]
    times_ms: list[float] = field(default_factory=list)
    timed_prints: list[list] = field(default_factory=list)  # fingerprints of each timed call's outputs
    timed_numel: list[list[int]] = field(default_factory=list)  # and their element counts
    tick_gaps_ms: list[float] = field(default_factory=list)  # worker clock minus own clock, per timed call
    work: dict[str, dict] = field(default_factory=dict)  # "small"/"full" -> aten work traced on meta tensors

    @classmethod
    def from_report(cls, report: RunReport, n_trials: int) -> Reference:
        """The reference's outputs, or RuntimeError saying why the task's own program failed."""
        error = report.errors[0].get("message") if report.errors else None
        if report.exit.abnormal:
            error = error or f"reference run ended: {report.exit}"
        missing = [i for i in range(n_trials) if i not in report.trials]
        if error or missing:
            raise RuntimeError(f"the task's reference failed: {error or 'missing outputs'}")
        trials = [report.trials[i] for i in range(n_trials)]
        timed = report.timed or []
        return cls(outputs=[t.outputs.unpack() for t in trials], digests=[t.digests for t in trials],
                   times_ms=[c.ms for c in timed], timed_prints=[c.fingerprints for c in timed],
                   timed_numel=[c.numel for c in timed],
                   tick_gaps_ms=[c.external_ms - c.ms for c in timed if c.external_ms is not None],
                   work=report.work)

    @property
    def nbytes(self) -> int:
        return sum(o.numel() * o.element_size() for outs in self.outputs for o in outs if isinstance(o, torch.Tensor))

    @property
    def runtime_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    def usable(self) -> list[bool]:
        return [all(not o.is_floating_point() or bool(torch.isfinite(o).all()) for o in outs) for outs in self.outputs]
