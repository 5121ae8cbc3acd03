"""The one parser for what a sandboxed run sent back: an event stream becomes a ``RunReport``.

The events come from an untrusted process (relayed and time-stamped by the worker), so every field
is read defensively here; a stream that breaks the protocol raises ``MalformedReport``. Tensors stay
packed until the judge unpacks the ones it compares.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

import torch

from .. import wire
from ..protocol import Event, ProtocolError, StoppingRule, net_ms


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
    labels: list = field(default_factory=list)  # what each value is (a backward task's gradients)
    backward_launches: int | None = None  # own launches during the backward pass (backward tasks)
    grad_nodes: list = field(default_factory=list)  # autograd nodes other than own Functions and views


@dataclass
class GhostReport:
    index: int
    fill: str
    raised: bool
    outputs: Packed
    phase: str = "all"  # "all": every own kernel skipped; "backward": only the backward's (backward tasks)


@dataclass
class TimedCall:
    ms: float  # by the backend's clock
    host_ms: float  # by the host clock around the call
    own_ms: float  # host time inside own launches
    fingerprints: list
    launches: int | None
    external_ms: float | None = None  # by the worker's clock, between the call's two ticks
    numel: list[int] = field(default_factory=list)  # element count of each output
    backward_launches: int | None = None  # own launches during the backward pass (backward tasks)


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
    timer_overhead_ms: float = 0.0  # the run's timer, calibrated on empty calls before the candidate existed
    timing_rule: dict | None = None  # the stopping rule the run says it followed (trusted from the reference only)
    checked: list[dict] = field(default_factory=list)  # untimed calls after timing stopped: fingerprints, numel
    profile: dict | None = None
    ghosts: list[GhostReport] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    exit: Exit = field(default_factory=Exit)
    done: bool = False
    forward_s: float = 0.0
    device_name: str = ""  # the GPU's name as the run's torch reported it (reference runs on CUDA)
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
                host_ms=float(event.get("host_ms") or 0.0), labels=[str(x)[:200] for x in event.get("labels") or []],
                backward_launches=None if event.get("backward_launches") is None else int(event["backward_launches"]),
                grad_nodes=[str(x)[:200] for x in event.get("grad_nodes") or []][:50])
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
            report.timer_overhead_ms = _overhead(event.get("overhead_ms"))
            report.timing_rule = event.get("rule")
            report.checked = [{"fingerprints": list(c.get("fingerprints") or []),
                               "numel": [int(n) for n in c.get("numel") or []]} for c in event.get("checked") or []]
        elif kind == Event.PROFILE:
            report.profile = event
        elif kind == Event.GHOST:
            report.ghosts.append(GhostReport(index=int(event.get("index", 0)), fill=str(event.get("fill", "")),
                                             raised=bool(event.get("raised")),
                                             outputs=Packed(list(event.get("outputs", [])), blobs),
                                             phase=str(event.get("phase", "all"))))
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
            report.device_name = str(event.get("device_name", ""))[:200]
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
                     launches=None if launches is None else int(launches),
                     backward_launches=None if rec.get("backward_launches") is None else int(rec["backward_launches"]))


def _exit(event: dict) -> Exit:
    elapsed = event.get("elapsed")
    code = event.get("exit_code")
    return Exit(killed_for=event.get("killed_for"), signal=event.get("signal"),
                exit_code=None if code is None else int(code), worker_died=bool(event.get("worker_died")),
                detail=str(event.get("detail", "")), log_tail=str(event.get("log_tail") or ""),
                elapsed=None if elapsed is None else float(elapsed))


def _overhead(value) -> float:
    """A reported timer overhead, or 0 (nothing subtracted) for one that is missing, negative or not finite."""
    value = float(value or 0.0)
    return value if math.isfinite(value) and value > 0 else 0.0


def _rule(header: dict | None) -> StoppingRule | None:
    try:
        return None if header is None else StoppingRule(**header)
    except (ProtocolError, TypeError) as exc:
        raise RuntimeError(f"the task's reference failed: it reported a malformed stopping rule ({exc})") from exc


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
    overhead_ms: float = 0.0  # the reference run's timer overhead, subtracted from its calls
    rule: StoppingRule | None = None  # the stopping rule both runs follow, as the reference run applied it
    device_name: str = ""  # the GPU it ran on (CUDA), for the speed of light's peaks
    labels: list[str] = field(default_factory=list)  # names of a trial's values (outputs, then gradients)

    @property
    def gradients_from(self) -> int:
        """Where a call's gradients start among its values (a backward task's); the count of values otherwise."""
        grads = [i for i, label in enumerate(self.labels) if label.startswith("gradient")]
        return grads[0] if grads else len(self.outputs[0]) if self.outputs else 0

    @property
    def grad_params(self) -> tuple[str, ...]:
        """The parameters whose gradients a backward task checks, by name, in the reference's order."""
        prefix = "gradient of "
        return tuple(label[len(prefix):] for label in self.labels
                     if label.startswith(prefix) and not label.startswith(prefix + "input "))

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
                   times_ms=[c.ms for c in timed],
                   timed_prints=[c.fingerprints for c in timed] + [c["fingerprints"] for c in report.checked],
                   timed_numel=[c.numel for c in timed] + [c["numel"] for c in report.checked],
                   tick_gaps_ms=[c.external_ms - c.ms for c in timed if c.external_ms is not None],
                   work=report.work, overhead_ms=report.timer_overhead_ms, rule=_rule(report.timing_rule),
                   device_name=report.device_name, labels=list(trials[0].labels) if trials else [])

    def to_payload(self) -> dict:
        """Plain containers (dicts, lists, strings, numbers, tensors) for ``torch.save``, so the disk
        cache can read them back with a weights-only load: a cache file must not be able to run code.
        ValueError for a field that is not plain (a new field needs a line here and in ``from_payload``)."""
        payload = {f.name: getattr(self, f.name) for f in fields(self)}
        payload["outputs"] = [[self._plain_output(v) for v in outs] for outs in self.outputs]
        payload["rule"] = None if self.rule is None else asdict(self.rule)
        bad = [name for name, value in payload.items() if name != "outputs" and not self._is_plain(value)]
        if bad:
            raise ValueError(f"Reference fields {bad} are not plain values: they cannot be stored")
        return payload

    #: The container each stored field must come back as (the others: any plain value).
    _STORED_TYPES: ClassVar[dict[str, tuple]] = {"digests": (list,), "times_ms": (list,), "timed_prints": (list,), "timed_numel": (list,),
                     "tick_gaps_ms": (list,), "work": (dict,), "overhead_ms": (int, float), "rule": (dict, type(None)),
                     "device_name": (str,), "labels": (list,)}

    @classmethod
    def from_payload(cls, payload) -> Reference:
        """The reference ``to_payload`` described; ValueError when ``payload`` is not of that shape."""
        names = {f.name for f in fields(cls)}
        if type(payload) is not dict or set(payload) != names:
            raise ValueError(f"a stored reference has the fields {sorted(names)}")
        outputs = payload["outputs"]
        if type(outputs) is not list or any(type(outs) is not list for outs in outputs):
            raise ValueError("stored outputs are a list of lists")
        rest = {name: payload[name] for name in names - {"outputs"}}
        wrong = [n for n, v in rest.items() if not cls._is_plain(v) or type(v) not in cls._STORED_TYPES.get(n, (type(v),))]
        if wrong:
            raise ValueError(f"stored fields {sorted(wrong)} are not of the expected plain types")
        digests = rest["digests"]
        if len(digests) != len(outputs) or any(type(d) is not list or any(type(x) is not str for x in d) for d in digests):
            raise ValueError("stored digests are one list of strings per trial")
        rest["rule"] = None if rest["rule"] is None else StoppingRule(**rest["rule"])
        return cls(outputs=[[cls._restored_output(v) for v in outs] for outs in outputs], **rest)

    @property
    def nbytes(self) -> int:
        return sum(o.numel() * o.element_size() for outs in self.outputs for o in outs if isinstance(o, torch.Tensor))

    @property
    def net_times_ms(self) -> list[float]:
        """Each timed call less the reference's timer overhead."""
        return [net_ms(t, self.overhead_ms) for t in self.times_ms]

    @property
    def runtime_ms(self) -> float | None:
        """The median of the net timed calls: what a candidate's speedup is measured against."""
        return statistics.median(self.net_times_ms) if self.times_ms else None

    def usable(self) -> list[bool]:
        return [all(not o.is_floating_point() or bool(torch.isfinite(o).all()) for o in outs) for outs in self.outputs]

    _SCALARS: ClassVar[tuple] = (bool, int, float, type(None))

    @staticmethod
    def _plain_output(value):
        """One output as plain containers: tensors and scalars stay, a value the wire could not carry
        becomes ``{"unsupported": type name}``, anything else ``{"value": ...}``."""
        if isinstance(value, torch.Tensor) or type(value) in Reference._SCALARS:
            return value
        if isinstance(value, wire.Unsupported):
            return {"unsupported": str(value)}
        if isinstance(value, (list, tuple)):
            return [Reference._plain_output(v) for v in value]
        return {"value": value}

    @staticmethod
    def _restored_output(value):
        if type(value) is torch.Tensor or type(value) in Reference._SCALARS:
            return value
        if type(value) is list:
            return [Reference._restored_output(v) for v in value]
        if type(value) is dict and set(value) == {"unsupported"} and type(value["unsupported"]) is str:
            return wire.Unsupported(value["unsupported"])
        if type(value) is dict and set(value) == {"value"} and Reference._is_plain(value["value"]):
            return value["value"]
        raise ValueError(f"a stored output is not a tensor, a scalar or a tagged value: {type(value).__name__}")

    @staticmethod
    def _is_plain(value, depth: int = 0) -> bool:
        """JSON-like: dicts with string keys, lists, strings, numbers, booleans, None (no tensors)."""
        if depth > 64:
            return False
        if type(value) in (*Reference._SCALARS, str):
            return True
        if type(value) in (list, tuple):
            return all(Reference._is_plain(v, depth + 1) for v in value)
        if type(value) is dict:
            return all(type(k) is str and Reference._is_plain(v, depth + 1) for k, v in value.items())
        return False
