"""What runs inside one sandboxed evaluation process: a reference run or a candidate run.

Everything here reports through ``emit(header, blobs)``; the trusted side does all comparisons.
The order matters: trial inputs are drawn and the task module is dropped *before* the candidate is
imported, so the candidate can neither patch the input generator nor find the reference module.
"""

from __future__ import annotations

import gc
import linecache
import os
import sys
import threading
import time
import traceback
import types

import psutil
import torch

from . import wire
from .inputs import digest, fingerprint, init_inputs, make_inputs
from .launches import LaunchRecorder
from .timing import Timer, make_timer

CANDIDATE_MODULE = "kernel_candidate"


def _outputs(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _load_task(program: str, label: str) -> types.ModuleType:
    module = types.ModuleType("kernel_task")
    exec(compile(program, f"<{label}>", "exec"), module.__dict__)
    return module


def _draw(request: dict) -> dict:
    """Every input the run will need, per trial, plus the constructor arguments per program."""
    programs = {"main": _load_task(request["program"], "task")}
    if request.get("alt_program"):
        programs["alt"] = _load_task(request["alt_program"], "task-alt")
    drawn = {
        "init": {name: init_inputs(m, request["init_seed"]) for name, m in programs.items()},
        "trials": [make_inputs(programs[t["program"]], t["seed"], t["variant"]) for t in request["trials"]],
        "models": {name: m.Model for name, m in programs.items()} if request["kind"] == "reference" else {},
    }
    del programs
    gc.collect()
    return drawn


def _to(values: list, device: str) -> list:
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# -- watched identities (hack 10) and harness introspection (hack 13) ----------------------------

def _watched() -> dict[str, object]:
    import triton.testing

    found = {
        "time.perf_counter": time.perf_counter, "time.perf_counter_ns": time.perf_counter_ns,
        "time.time": time.time, "time.monotonic": time.monotonic, "torch.allclose": torch.allclose,
        "torch.equal": torch.equal, "torch.testing.assert_close": torch.testing.assert_close,
        "torch.Tensor.__eq__": torch.Tensor.__eq__, "triton.testing.do_bench": triton.testing.do_bench,
        "torch.cuda.synchronize": torch.cuda.synchronize, "torch.cuda.Event": torch.cuda.Event,
        "torch.cuda.Event.record": torch.cuda.Event.record,
        "torch.cuda.Event.elapsed_time": torch.cuda.Event.elapsed_time,
        "torch.cuda.Stream": torch.cuda.Stream,
    }
    return found


def _resolve(dotted: str):
    obj = {"time": time, "torch": torch, "triton": sys.modules.get("triton")}[dotted.split(".")[0]]
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part, None)
    return obj


class HarnessSpy:
    """Records calls to object and frame introspection made from the candidate's file."""

    TARGETS = ((gc, "get_objects"), (gc, "get_referrers"), (gc, "get_referents"), (sys, "_getframe"))

    def __init__(self, own_file: str):
        self.own_file = own_file
        self.calls: set[str] = set()

    def install(self) -> None:
        for owner, name in self.TARGETS:
            original = getattr(owner, name)
            setattr(owner, name, self._wrap(owner, name, original))

    def _wrap(self, owner, name, original):
        spy = self
        frame_of = sys._getframe

        if name == "_getframe":
            def wrapper(depth=0):
                frame = frame_of(depth + 1)
                caller = frame_of(1)
                if caller.f_code.co_filename == spy.own_file:
                    spy.calls.add("sys._getframe")
                return frame
        else:
            def wrapper(*args, **kwargs):
                if frame_of(1).f_code.co_filename == spy.own_file:
                    spy.calls.add(f"{owner.__name__}.{name}")
                return original(*args, **kwargs)
        return wrapper


# -- the two kinds of run ------------------------------------------------------------------------

class Run:
    def __init__(self, request: dict, emit):
        self.request = request
        self.emit = emit
        self.device = request["device"]
        self.timer: Timer = make_timer(request["backend"], self.device)

    def stage(self, name: str) -> None:
        self.emit({"event": "stage", "stage": name})

    def send_outputs(self, event: dict, outputs: list) -> None:
        blobs: list[bytes] = []
        event["outputs"] = [wire.pack_value(o, blobs) for o in outputs]
        self.emit(event, blobs)

    def timed_calls(self, call, sets: list[list], recorder: LaunchRecorder | None):
        """Warm up, then time calls on fixed input tensors refilled in place from rotating sets: a
        cache keyed on tensor identity answers stale values and fails the fingerprint check."""
        cfg = self.request["timing"]
        buffers = [x.clone() if isinstance(x, torch.Tensor) else x for x in sets[0]]

        def refill(i: int) -> int:
            k = i % len(sets)
            for buf, src in zip(buffers, sets[k]):
                if isinstance(buf, torch.Tensor):
                    buf.copy_(src)
            return k

        for i in range(cfg["warmup"]):
            refill(i)
            call(buffers)
        _sync(self.device)
        self.emit({"event": "timing_begin"})
        records = []
        for i in range(cfg["iters"]):
            k = refill(i)
            own_before = recorder.seconds if recorder else 0.0
            self.timer.flush()
            elapsed_ms, host_ms, out = self.timer.time(lambda: call(buffers))
            own_ms = ((recorder.seconds - own_before) * 1e3) if recorder else 0.0
            outs = _outputs(out)
            prints = [fingerprint(o, self.request["fingerprint_key"]) if type(o) is torch.Tensor else None
                      for o in outs]
            records.append({"set": k, "ms": elapsed_ms, "host_ms": host_ms, "own_ms": own_ms,
                            "fingerprints": prints})
        self.emit({"event": "timing_end", "records": records})
        return records


class ReferenceRun(Run):
    def run(self) -> None:
        drawn = _draw(self.request)
        trials = self.request["trials"]
        models = {}
        for name, cls in drawn["models"].items():
            torch.manual_seed(self.request["init_seed"])
            models[name] = cls(*drawn["init"][name]).to(self.device)
        self.stage("correctness")
        for i, (trial, inputs) in enumerate(zip(trials, drawn["trials"])):
            inputs_dev = _to(inputs, self.device)
            with torch.no_grad():
                out = _outputs(models[trial["program"]](*inputs_dev))
            _sync(self.device)
            self.send_outputs({"event": "trial", "index": i, "digests": [digest(x) for x in inputs]}, out)
        if self.request.get("timing"):
            self.stage("timing")
            model = models["main"]
            sets = [_to(drawn["trials"][k], self.device) for k in self.request["timing"]["sets"]]
            with torch.no_grad():
                self.timed_calls(lambda xs: model(*xs), sets, None)


class CandidateRun(Run):
    def run(self) -> None:
        request = self.request
        drawn = _draw(request)
        path = os.path.join(os.getcwd(), "candidate.py")
        with open(path, "w") as f:
            f.write(request["code"])
        recorder = LaunchRecorder(path, set(request.get("kernel_names", [])))
        recorder.install()
        spy = HarnessSpy(path)
        watched = _watched()
        baseline_threads = {t.ident for t in threading.enumerate()}

        self.stage("compile")
        try:
            module = types.ModuleType(CANDIDATE_MODULE)
            module.__file__ = path
            sys.modules[CANDIDATE_MODULE] = module
            spy.install()
            exec(compile(request["code"], path, "exec"), module.__dict__)
            model_cls = getattr(module, "ModelNew")
            models = {}
            for name, args in drawn["init"].items():
                torch.manual_seed(request["init_seed"])
                models[name] = model_cls(*args).to(self.device)
        except BaseException as exc:  # noqa: BLE001 - any failure of candidate code is a result
            self.fail("compile", exc, path)
            return
        self.emit({"event": "compiled"})

        def protect(inputs: list, model) -> None:
            recorder.protected = {x.untyped_storage().data_ptr() for x in inputs if isinstance(x, torch.Tensor)}
            recorder.protected |= {p.untyped_storage().data_ptr() for p in (*model.parameters(), *model.buffers())}

        def checks(when: str) -> None:
            tampered = [n for n, obj in watched.items() if _resolve(n) is not obj]
            if tampered:
                self.emit({"event": "hack", "code": "timer_tampering", "detail": f"{when}: {', '.join(tampered)}"})
            threads = [t for t in threading.enumerate() if t.ident not in baseline_threads and t.is_alive()]
            children = _children()
            if threads or children:
                self.emit({"event": "hack", "code": "thread_or_process_spawned",
                           "detail": f"{when}: {len(threads)} thread(s), {len(children)} process(es) alive"})
            if spy.calls:
                self.emit({"event": "hack", "code": "reads_harness_state", "detail": ", ".join(sorted(spy.calls))})
                spy.calls.clear()

        checks("import")
        self.stage("correctness")
        trials = request["trials"]
        live: list | None = None
        try:
            for i, (trial, inputs) in enumerate(zip(trials, drawn["trials"])):
                if trial.get("reuse") and live is not None:  # same tensor objects, new values
                    for buf, src in zip(live, inputs):
                        if isinstance(buf, torch.Tensor):
                            buf.copy_(src)
                    args = live
                else:
                    args = _to(inputs, self.device)
                model = models[trial["program"]]
                recorder.reset()
                with torch.no_grad():
                    out = _outputs(model(*args))
                _sync(self.device)
                live = args
                checks(f"trial {i}")
                self.send_outputs({
                    "event": "trial", "index": i, "launches": recorder.launches,
                    "digests": [digest(x) for x in args], "types": [_type_name(o) for o in out],
                }, out)
            self.stage("verification")
            first = _to(drawn["trials"][0], self.device)
            recorder.reset()
            with torch.enable_grad():
                models["main"](*first)
            _sync(self.device)
            self.emit({"event": "grad_launches", "launches": recorder.launches})
            checks("grad-mode call")
        except BaseException as exc:  # noqa: BLE001
            self.fail("correctness", exc, path)
            return

        try:
            timing = request.get("timing")
            model = models["main"]
            if timing:
                self.stage("timing")
                sets = [_to(drawn["trials"][k], self.device) for k in timing["sets"]]
                with torch.no_grad():
                    self.timed_calls(lambda xs: model(*xs), sets, recorder)
                checks("timing")
                if request.get("profile") and self.device.startswith("cuda"):
                    self.emit({"event": "profile", **self.timer.profile(lambda: model(*sets[0]), recorder.own_names)})
            # Ghost replay last: it poisons scratch buffers the model may keep.
            self.stage("ghost")
            ghost_inputs = _to(drawn["trials"][0], self.device)
            protect(ghost_inputs, model)
            recorder.ghost = True
            with torch.no_grad():
                out = _outputs(model(*ghost_inputs))
            _sync(self.device)
            recorder.ghost = False
            self.send_outputs({"event": "ghost", "launches": recorder.launches}, out)
        except BaseException as exc:  # noqa: BLE001
            self.fail("timing", exc, path)
            return

    def fail(self, stage: str, exc: BaseException, path: str) -> None:
        """Report a failure with the traceback lines that point into the candidate's code."""
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if f.filename == path]
        lines = [f"line {f.lineno}, in {f.name}: {(f.line or linecache.getline(path, f.lineno)).strip()}" for f in own[-3:]]
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.emit({"event": "error", "stage": stage, "message": message[-2000:], "where": lines})


def _type_name(value) -> str:
    t = type(value)
    return "Tensor" if t is torch.Tensor else f"{t.__module__}.{t.__qualname__}"


def _children() -> list:
    """Live child processes of this process (zombies excluded)."""
    return [p for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE]


def run_request(request: dict, emit) -> None:
    torch.set_num_threads(1)
    runner = ReferenceRun if request["kind"] == "reference" else CandidateRun
    runner(request, emit).run()
    emit({"event": "done"})
