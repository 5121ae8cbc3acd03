"""What runs inside one sandboxed evaluation process: a reference run or a candidate run.

Everything here reports through ``emit(header, blobs)``; the trusted side does all comparisons.
The order matters: trial inputs are drawn and the task module is dropped *before* the candidate is
imported, so the candidate can neither patch the input generator nor find the reference module.
After every call of candidate code the watchers of :mod:`kernel_env.inside.guards` run first: replaced
functions are put back before the harness uses them again, and whatever was seen is reported.
"""

from __future__ import annotations

import gc
import linecache
import os
import sys
import traceback
import types
from time import perf_counter  # bound before the candidate is imported

import torch

from .. import wire
from ..protocol import CandidateRequest, Event, RunRequest
from ..wire import digest, fingerprint
from .guards import HarnessSpy, Integrity, Spawned, foreign_storage
from .inputs import init_inputs, make_inputs
from .launches import GHOST_FILLS, LaunchRecorder
from .timing import Timer, make_timer

CANDIDATE_MODULE = "kernel_candidate"


def _outputs(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _load_task(program: str, label: str) -> types.ModuleType:
    module = types.ModuleType("kernel_task")
    exec(compile(program, f"<{label}>", "exec"), module.__dict__)
    return module


def _draw(request: RunRequest) -> dict:
    """Every input the run will need, per trial, plus the constructor arguments per program."""
    programs = {"main": _load_task(request.program, "task")}
    if request.alt_program:
        programs["alt"] = _load_task(request.alt_program, "task-alt")
    drawn = {
        "init": {name: init_inputs(m, request.init_seed) for name, m in programs.items()},
        "trials": [make_inputs(programs[t.program], t.seed, t.variant) for t in request.trials],
        "models": {name: m.Model for name, m in programs.items()} if not isinstance(request, CandidateRequest) else {},
    }
    del programs
    gc.collect()
    return drawn


def _fresh(values: list, device: str) -> list:
    """Copies with their own storage: no call sees a tensor another call (or the draw) holds."""
    return [v.to(device, copy=True) if isinstance(v, torch.Tensor) else v for v in values]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# -- the two kinds of run ------------------------------------------------------------------------

class Run:
    def __init__(self, request: RunRequest, emit):
        self.request = request
        self._emit = emit
        self.device = request.device
        self.timer: Timer = make_timer(request.backend, self.device)
        self._verify = None  # Integrity.verify, bound before the candidate is imported
        self.forward_s = 0.0  # time inside model calls: the rest of an evaluation is harness overhead

    def forward(self, model, args: list):
        start = perf_counter()
        try:
            return model(*args)
        finally:
            self.forward_s += perf_counter() - start

    def emit(self, header: dict, blobs=()) -> None:
        """Every message leaves on restored originals: a patched ``wire.send`` cannot drop it."""
        if self._verify is not None:
            self._verify()
        self._emit(header, blobs)

    def stage(self, name: str) -> None:
        self.emit({"event": Event.STAGE, "stage": name})

    def send_outputs(self, event: dict, outputs: list) -> None:
        blobs: list[bytes] = []
        event["outputs"] = [wire.pack_value(o, blobs) for o in outputs]
        self.emit(event, blobs)

    def timed_calls(self, call, sets: list[list], recorder: LaunchRecorder | None, after=None):
        """Warm up, then time calls on fixed input tensors refilled in place from rotating sets: a
        cache keyed on tensor identity answers stale values and fails the fingerprint check. Each
        record carries the own launches of its call; ``after`` runs the wait-free checks right after
        each call returns, before anything else can finish work left behind."""
        cfg = self.request.timing
        buffers = [x.clone() if isinstance(x, torch.Tensor) else x for x in sets[0]]

        def refill(i: int) -> int:
            k = i % len(sets)
            for buf, src in zip(buffers, sets[k]):
                if isinstance(buf, torch.Tensor):
                    buf.copy_(src)
            return k

        for i in range(cfg.warmup):
            refill(i)
            call(buffers)
        _sync(self.device)
        self.emit({"event": Event.TIMING_BEGIN})
        records = []
        for i in range(cfg.iters):
            k = refill(i)
            own_before = recorder.seconds if recorder else 0.0
            count_before = recorder.launches if recorder else 0
            self.timer.flush()
            elapsed_ms, host_ms, out = self.timer.time(lambda: call(buffers))
            if after is not None:
                after(f"timed call {i}")
            own_ms = ((recorder.seconds - own_before) * 1e3) if recorder else 0.0
            outs = _outputs(out)
            prints = [fingerprint(o, self.request.fingerprint_key) if type(o) is torch.Tensor else None
                      for o in outs]
            records.append({"set": k, "ms": elapsed_ms, "host_ms": host_ms, "own_ms": own_ms,
                            "fingerprints": prints,
                            "launches": (recorder.launches - count_before) if recorder else None})
            del out, outs
        self.emit({"event": Event.TIMING_END, "records": records})
        return records


class ReferenceRun(Run):
    def run(self) -> None:
        drawn = _draw(self.request)
        trials = self.request.trials
        models = {}
        for name, cls in drawn["models"].items():
            torch.manual_seed(self.request.init_seed)
            models[name] = cls(*drawn["init"][name]).to(self.device)
        self.stage("correctness")
        for i, (trial, inputs) in enumerate(zip(trials, drawn["trials"])):
            inputs_dev = _fresh(inputs, self.device)
            with torch.no_grad():
                out = _outputs(self.forward(models[trial.program], inputs_dev))
            _sync(self.device)
            self.send_outputs({"event": Event.TRIAL, "index": i, "digests": [digest(x) for x in inputs]}, out)
        if self.request.timing:
            self.stage("timing")
            model = models["main"]
            sets = [_fresh(drawn["trials"][k], self.device) for k in self.request.timing.sets]
            with torch.no_grad():
                self.timed_calls(lambda xs: self.forward(model, xs), sets, None)


class CandidateRun(Run):
    """Import the candidate, then: correctness trials (fresh tensors every call, one call that reuses
    the previous call's tensors with new values), a grad-mode launch check, timing, ghost replay.
    Watchers run after every call; everything they see is reported, the trusted side decides."""

    def run(self) -> None:
        request: CandidateRequest = self.request
        drawn = _draw(request)
        path = os.path.join(os.getcwd(), "candidate.py")
        with open(path, "w") as f:
            f.write(request.code)
        cuda = self.device.startswith("cuda")
        recorder = LaunchRecorder(path, set(request.kernel_names), cuda=cuda)
        recorder.install()
        integrity = Integrity().capture()
        for cls in recorder.classes:
            integrity.watch(f"{cls.__module__}.{cls.__qualname__}.run", cls, "run")
        spy = HarnessSpy(path)
        spy.install(integrity)
        # A GPU driver starts helper threads on first use, so OS threads are counted on the CPU only.
        spawned = Spawned(os_threads=not cuda)
        self.integrity, self._verify = integrity, integrity.verify
        self.recorder, self.spy, self.spawned = recorder, spy, spawned
        self.reported: set[str] = set()  # replaced names already reported
        self.flagged: set[str] = set()
        self.touched: set[int] = set()  # storages the harness gave to numpy (digests, messages)

        self.stage("compile")
        try:
            module = types.ModuleType(CANDIDATE_MODULE)
            module.__file__ = path
            sys.modules[CANDIDATE_MODULE] = module
            exec(compile(request.code, path, "exec"), module.__dict__)
            self._verify()
            model_cls = getattr(module, "ModelNew")
            models = {}
            for name, args in drawn["init"].items():
                torch.manual_seed(request.init_seed)
                models[name] = model_cls(*args).to(self.device)
            self._verify()
        except BaseException as exc:  # noqa: BLE001 - any failure of candidate code is a result
            self.fail("compile", exc, path)
            return
        self.emit({"event": Event.COMPILED})
        self.checks("import")
        try:
            self.correctness(models, drawn)
        except BaseException as exc:  # noqa: BLE001
            self.fail("correctness", exc, path)
            return
        try:
            self.timing(models["main"], drawn)
        except BaseException as exc:  # noqa: BLE001
            self.fail("timing", exc, path)
            return
        self.ghost(models["main"], drawn)

    # -- watchers ------------------------------------------------------------------------------

    def hack(self, code: str, detail: str) -> None:
        if code not in self.flagged or code == "timer_tampering":  # the first sighting says enough
            self.flagged.add(code)
            self.emit({"event": Event.HACK, "code": code, "detail": detail})

    def checks(self, when: str, quick: bool = False) -> None:
        """Timer/harness identities, harness introspection, threads and (unless ``quick``) processes."""
        self._verify()
        tampered = sorted(self.integrity.tampered - self.reported)
        if tampered:
            self.reported |= set(tampered)
            self.hack("timer_tampering", f"{when}: replaced {', '.join(tampered)}")
        threads = self.spawned.threads()
        processes = 0 if quick else self.spawned.processes()
        if threads or processes:
            self.hack("thread_or_process_spawned",
                      f"{when}: {threads} thread(s), {processes} process(es) still alive after the call")
        if self.spy.calls:
            self.hack("reads_harness_state", ", ".join(sorted(self.spy.calls)))
            self.spy.calls.clear()

    def quick_checks(self, when: str) -> None:
        self.checks(when, quick=True)

    # -- stages --------------------------------------------------------------------------------

    def correctness(self, models: dict, drawn: dict) -> None:
        self.stage("correctness")
        recorder = self.recorder
        live: list | None = None
        for i, (trial, inputs) in enumerate(zip(self.request.trials, drawn["trials"])):
            if trial.reuse and live is not None:  # same tensor objects, new values
                for buf, src in zip(live, inputs):
                    if isinstance(buf, torch.Tensor):
                        buf.copy_(src)
                args = live
            else:
                args = _fresh(inputs, self.device)
            recorder.reset()
            start = perf_counter()
            with torch.no_grad():
                out = _outputs(self.forward(models[trial.program], args))
            self._verify()  # first thing after candidate code: later lookups see the originals
            _sync(self.device)
            host_ms = (perf_counter() - start) * 1e3
            self.checks(f"trial {i}")
            foreign = [j for j, o in enumerate(out) if foreign_storage(o, self.touched)]  # before digests touch it
            live = args
            self.send_outputs({
                "event": Event.TRIAL, "index": i, "launches": recorder.launches,
                "side_launches": recorder.side_launches, "digests": [digest(x) for x in args],
                "types": [_type_name(o) for o in out], "foreign": foreign, "host_ms": host_ms,
            }, out)
            self.touched |= {t.untyped_storage().data_ptr() for t in (*args, *out) if type(t) is torch.Tensor}
            del out  # nothing of a checked output stays around for the next call to find
        self.stage("verification")
        recorder.reset()
        with torch.enable_grad():
            self.forward(models["main"], _fresh(drawn["trials"][0], self.device))
        self._verify()
        _sync(self.device)
        self.emit({"event": Event.GRAD_LAUNCHES, "launches": recorder.launches})
        self.checks("grad-mode call")

    def timing(self, model, drawn: dict) -> None:
        timing = self.request.timing
        if not timing:
            return
        self.stage("timing")
        sets = [_fresh(drawn["trials"][k], self.device) for k in timing.sets]
        with torch.no_grad():
            self.timed_calls(lambda xs: self.forward(model, xs), sets, self.recorder, after=self.quick_checks)
        self.checks("timing")
        if self.request.profile and self.device.startswith("cuda"):
            self.emit({"event": Event.PROFILE, **self.timer.profile(lambda: model(*sets[0]), self.recorder.own_names)})

    def ghost(self, model, drawn: dict) -> None:
        """Ghost replay, last because it poisons buffers the model may keep: every own kernel is
        skipped and the tensors it would write are filled (NaN, then random values). Inputs are
        fresh copies of a trial the timed calls did not use last, so a buffer the model kept from
        the previous call does not hold the right answer by accident."""
        self.stage("ghost")
        pos = _ghost_trial(self.request)
        recorder = self.recorder
        for fill in GHOST_FILLS:
            inputs = _fresh(drawn["trials"][pos], self.device)
            recorder.protected = {x.untyped_storage().data_ptr() for x in inputs if isinstance(x, torch.Tensor)}
            recorder.protected |= {p.untyped_storage().data_ptr() for p in (*model.parameters(), *model.buffers())}
            recorder.reset()
            recorder.ghost = fill
            try:
                with torch.no_grad():
                    out = _outputs(self.forward(model, inputs))
                self._verify()
                _sync(self.device)
            except BaseException:  # noqa: BLE001 - failing without its kernels is what an honest model does
                out = None
            finally:
                recorder.ghost = None
            event = {"event": Event.GHOST, "index": pos, "fill": fill, "launches": recorder.launches}
            if out is None:
                self.emit({**event, "raised": True})
            else:
                self.send_outputs(event, out)

    def fail(self, stage: str, exc: BaseException, path: str) -> None:
        """Report a failure with the traceback lines that point into the candidate's code."""
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if f.filename == path]
        lines = [f"line {f.lineno}, in {f.name}: {(f.line or linecache.getline(path, f.lineno)).strip()}" for f in own[-3:]]
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.emit({"event": Event.ERROR, "stage": stage, "message": message[-2000:], "where": lines})


def _ghost_trial(request: CandidateRequest) -> int:
    """A main-shape trial whose inputs were not the last ones timed (see ``CandidateRun.ghost``)."""
    trials = request.trials
    sets = list(request.timing.sets) if request.timing else []
    last = sets[(request.timing.iters - 1) % len(sets)] if sets else None
    mains = [i for i, t in enumerate(trials) if t.program == "main"]
    for pos in mains:
        if pos not in sets and not trials[pos].reuse:
            return pos
    return next((pos for pos in mains if pos != last), 0)


def _type_name(value) -> str:
    t = type(value)
    return "Tensor" if t is torch.Tensor else f"{t.__module__}.{t.__qualname__}"


def run_request(request: RunRequest, emit) -> None:
    torch.set_num_threads(1)
    runner = CandidateRun if isinstance(request, CandidateRequest) else ReferenceRun
    run = runner(request, emit)
    run.run()
    emit({"event": Event.DONE, "forward_s": run.forward_s})
