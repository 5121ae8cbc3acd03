"""What runs inside one sandboxed evaluation process: a reference run or a candidate run.

Everything here reports through ``emit(header, blobs)``; the trusted side does all comparisons.
The order matters. Before the candidate is imported: the task's reference ``Model`` is dropped (only
its input functions stay), the snapshot of :mod:`kernel_env.inside.guards` is taken and the audit
hook of :mod:`kernel_env.inside.audit` installed. Inputs are drawn only *after* ``ModelNew`` is built
and the snapshot restored, from seeds the candidate could not know, so nothing can be precomputed at
import time; every timed call gets inputs of its own. After every call of candidate code the
snapshot is verified first: replaced functions are put back before the harness uses them again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import linecache
import os
import signal
import sys
import traceback
import types
from time import perf_counter  # bound before the candidate is imported

import torch

from .. import wire
from ..protocol import DTYPES, SLOT_ORDER, CandidateRequest, Event, RunRequest, StoppingRule
from ..wire import digest, fingerprint
from . import steps
from .audit import Audit
from .gpu_compile import GpuCompiler
from .guards import Integrity, Spawned, foreign_storage
from .inputs import init_inputs, make_inputs
from .interpreter_compat import explain
from .launches import GHOST_FILLS, LaunchRecorder
from .timing import Timer, make_timer
from .work import Sampling, input_bytes, record_call, trace_reference

CANDIDATE_MODULE = "kernel_candidate"
#: What the full-size work recording may cost: interpreted block operations (a budget that does not
#: depend on the machine's load, so the same code gets the same model), and, against pathological
#: cases only, seconds. Past either, the small-size work, scaled, stands in.
FULL_SIZE_WORK_OPS, FULL_SIZE_WORK_BUDGET_S = 100_000, 30.0
#: Programs a full-size launch runs: first, last, hinted, a run of RUN at a random start, SINGLES more.
FULL_SIZE_SINGLES, FULL_SIZE_RUN, FULL_SIZE_WHOLE_GRID = 4, 4, 16
#: Torch modes on these stacks see every tensor op, the harness's included: none may outlive a call.
_MODE_STACKS = (torch._C._len_torch_function_stack, torch._C._len_torch_dispatch_stack)


def _outputs(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _load_task(program: str, label: str, keep_model: bool) -> types.ModuleType:
    """The task's module. For a candidate run its ``Model`` (and every other module class) is
    removed before the candidate exists: only the input functions are left to find."""
    module = types.ModuleType("kernel_task")
    exec(compile(program, f"<{label}>", "exec"), module.__dict__)
    if not keep_model:
        for name, value in list(vars(module).items()):
            if isinstance(value, type) and issubclass(value, torch.nn.Module):
                del module.__dict__[name]
    return module


def _programs(request: RunRequest) -> dict[str, types.ModuleType]:
    keep = not isinstance(request, CandidateRequest)
    programs = {"main": _load_task(request.program, "task", keep)}
    if request.alt_program:
        programs["alt"] = _load_task(request.alt_program, "task-alt", keep)
    return programs


def _sync(device: str, _synchronize=getattr(torch._C, "_cuda_synchronize", None)) -> None:
    """Bound before import: a forward that replaced torch.cuda.synchronize changes nothing here."""
    if device.startswith("cuda"):
        _synchronize()


# -- the two kinds of run ------------------------------------------------------------------------

class Run:
    def __init__(self, request: RunRequest, emit, slot=None):
        self.request = request
        self._emit = emit
        self._slot = slot or _no_slot  # the device slot (see run_request)
        self.device = request.device
        self.timer: Timer = make_timer(request.backend, self.device)
        if request.timing is not None:  # all before the candidate is imported: nothing of it is in them
            self.timer.calibrate()
            self.stopping: StoppingRule = request.timing.rule
            self.stopping_header = dataclasses.asdict(self.stopping)  # what the reference tells the judge
        self._verify = None  # Integrity.verify, bound before the candidate is imported
        self.forward_s = 0.0  # time inside model calls: the rest of an evaluation is harness overhead
        self.programs = _programs(request)
        if request.work is not None:  # the benchmark size, for the work model only
            self.programs["full"] = _load_task(request.work.full_program, "task-full",
                                               not isinstance(request, CandidateRequest))
        self.init = {name: init_inputs(m, request.init_seed) for name, m in self.programs.items()}
        self.dtype = _torch_dtype(request.dtype)
        self.labels: list[str] = []  # what each value of the last call is (outputs, then gradients)
        self._specs: list[tuple] = []  # a backward call's floating outputs, for upstream gradients drawn ahead
        self._drawn: tuple | None = None  # (seed, upstream gradients) drawn ahead of a timed call
        self.harness_s = 0.0  # harness work inside calls (drawing upstream gradients, watching): not the model's
        self.backward_launches: int | None = None  # own launches in the last call's backward (candidate runs)

    def draw(self, seed: int, variant: str = "normal", program: str = "main", device: str = "cpu") -> list:
        return make_inputs(self.programs[program], seed, variant, device, self.dtype)

    def place(self, model):
        """A freshly built model on the run's device, at the task's dtype (both runs alike)."""
        model = model.to(self.device)
        return model if self.dtype is torch.float32 else model.to(self.dtype)

    def call(self, model, args: list, seed: int) -> list:
        """One call as the task defines it (see ``inside.steps``): the outputs under ``no_grad``, or for a
        backward task the outputs then the gradients, against upstream gradients drawn from ``seed``."""
        if not self.request.backward:
            with torch.no_grad():
                return _outputs(self.forward(model, args))
        xs = steps.leaves(args)
        with torch.enable_grad():
            outs = _outputs(self.forward(model, xs))
            targets = steps.differentiated(outs)
            self.after_forward(targets)
            upstream = self._upstream(seed, targets)
            params = self.params(model)
            start = perf_counter()
            try:
                grads = self.backward_pass(targets, upstream, xs, params)
            finally:
                self.forward_s += perf_counter() - start
        self.labels = steps.labels(len(outs), xs, params)
        return steps.detached(outs) + grads

    def caller(self, model, seed: int):
        """``fn(*inputs)`` making one call of ``model`` as the task defines it (for the work recording)."""
        return lambda *xs: self.call(model, list(xs), seed)

    def _upstream(self, seed: int, targets: list) -> list:
        """The upstream gradients of a call: drawn ahead (outside a timed interval) when they were for
        this seed and these shapes, else drawn now (and the time kept apart from the model's)."""
        wanted = steps.specs(targets)
        self._specs = wanted
        drawn, self._drawn = self._drawn, None
        if drawn is not None and drawn[0] == seed and [g.shape for g in drawn[1]] == [torch.Size(s[0]) for s in wanted]:
            return drawn[1]
        start = perf_counter()
        upstream = steps.upstream(seed, wanted)
        self.harness_s += perf_counter() - start
        return upstream

    def draw_ahead(self, seed: int) -> None:
        """Before a timed call of a backward task: its upstream gradients, so drawing them is not timed."""
        if self.request.backward and self._specs:
            self._drawn = (seed, steps.upstream(seed, self._specs))

    def params(self, model) -> list:
        return steps.reference_params(model)

    def after_forward(self, outputs: list) -> None:
        """Hook for the candidate run: look at the graph a backward call's forward built."""

    def backward_pass(self, targets: list, upstream: list, xs: list, params: list) -> list:
        return steps.gradients(targets, upstream, xs, params)

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

    def take_timing_slot(self) -> None:
        """Hold the device alone from here on: the last step of ``SLOT_ORDER``."""
        self._slot(SLOT_ORDER[2])

    def send_outputs(self, event: dict, outputs: list) -> None:
        blobs: list[bytes] = []
        event["outputs"] = [wire.pack_value(o, blobs) for o in outputs]
        self.emit(event, blobs)

    def before_harness_work(self) -> None:
        """Hook for the candidate run: verify the snapshot before the harness draws or refills inputs."""

    def timed_calls(self, call, recorder: LaunchRecorder | None, after=None, fingerprint_rest: bool = False):
        """Warm up, then time each call on fixed input tensors refilled in place, outside the timed
        interval, with inputs of that call's own seed: a cache keyed on tensor identity answers stale
        values and one keyed on contents never hits. Two ticks bracket each call for the worker's
        clock. Each record carries the own launches of its call; ``after`` runs the wait-free checks
        right after each call returns, before anything else can finish work left behind. Timing stops
        by the stopping rule bound before the candidate existed, on the times this timer measured
        (the trusted side replays it); ``fingerprint_rest`` (the reference) goes on untimed over the
        remaining seeds, so that every call a candidate may make has a fingerprint to match."""
        cfg = self.request.timing
        buffers, refill = self._timing_inputs()
        for i in range(cfg.warmup):
            refill(cfg.seeds[i])
            call(buffers, cfg.seeds[i])
        _sync(self.device)
        self.emit({"event": Event.TIMING_BEGIN})
        records, samples = [], []
        for i in range(cfg.iters):
            seed = cfg.seeds[cfg.warmup + i]
            refill(seed)
            own_before = recorder.seconds if recorder else 0.0
            count_before = recorder.launches if recorder else 0
            self.timer.flush()
            self._emit({"event": Event.TICK, "index": i})
            elapsed_ms, host_ms, out = self.timer.time(lambda: call(buffers, seed))
            self._emit({"event": Event.TICK, "index": i})
            if after is not None:
                after(f"timed call {i}")
            own_ms = ((recorder.seconds - own_before) * 1e3) if recorder else 0.0
            records.append({"ms": elapsed_ms, "host_ms": host_ms, "own_ms": own_ms, **self._prints(out),
                            "launches": (recorder.launches - count_before) if recorder else None,
                            "backward_launches": self.backward_launches})
            del out
            samples.append(elapsed_ms)
            if self.stopping.done(samples):
                break
        checked = self._untimed_rest(call, buffers, refill, len(records)) if fingerprint_rest else []
        self.emit({"event": Event.TIMING_END, "records": records, "checked": checked,
                   "overhead_ms": self.timer.overhead_ms, "rule": self.stopping_header})
        return records

    def _timing_inputs(self):
        """The input tensors every timed call reuses, and how to refill them with a seed's values."""
        cfg = self.request.timing
        on_device = self.device if self.device.startswith("cuda") else "cpu"
        buffers = [x.to(self.device) if isinstance(x, torch.Tensor) else x
                   for x in self.draw(cfg.seeds[0], device=on_device)]

        def refill(seed: int) -> None:
            self.before_harness_work()
            for buf, src in zip(buffers, self.draw(seed, device=on_device)):
                if isinstance(buf, torch.Tensor):
                    _copy(buf, src)
            self.draw_ahead(seed)

        return buffers, refill

    def _prints(self, out) -> dict:
        """Fingerprints and element counts of a call's outputs (plain tensors only)."""
        outs = _outputs(out)
        plain = [type(o) is torch.Tensor for o in outs]
        return {"fingerprints": [fingerprint(o, self.request.fingerprint_key) if p else None
                                 for o, p in zip(outs, plain)],
                "numel": [_numel(o) if p else 0 for o, p in zip(outs, plain)]}

    def _untimed_rest(self, call, buffers, refill, start: int) -> list[dict]:
        """Fingerprints of the calls after timing stopped, untimed, one per remaining seed."""
        cfg = self.request.timing
        checked = []
        for i in range(start, cfg.iters):
            refill(cfg.seeds[cfg.warmup + i])
            checked.append(self._prints(call(buffers, cfg.seeds[cfg.warmup + i])))
        _sync(self.device)
        return checked


class ReferenceRun(Run):
    def run(self) -> None:
        request = self.request
        models = {}
        for name in ("main", "alt"):
            if name in self.programs:
                torch.manual_seed(request.init_seed)
                models[name] = self.place(self.programs[name].Model(*self.init[name]))
        if request.work is not None:
            self.trace_work()
        self.stage("correctness")
        for i, trial in enumerate(request.trials):
            inputs = self.draw(trial.seed, trial.variant, trial.program)
            out = self.call(models[trial.program], _fresh(inputs, self.device), trial.seed)
            _sync(self.device)
            self.send_outputs({"event": Event.TRIAL, "index": i, "digests": [digest(x) for x in inputs],
                               "labels": self.labels}, out)
        if request.timing:
            model = self.baseline(models["main"])  # a torch.compile compiles before the device is held alone
            self.take_timing_slot()
            self.stage("timing")
            self.timed_calls(lambda xs, seed: self.call(model, xs, seed), None, fingerprint_rest=True)

    def baseline(self, model):
        """What the reference is timed as: the eager model, or ``torch.compile`` of it, compiled by one
        untimed call first (the correctness outputs always come from the eager model). A compile that
        fails fails the reference: a speedup against another baseline than the one asked for is wrong."""
        if self.request.timing.baseline != "compile":
            return model
        import torch._inductor.config as inductor

        inductor.compile_threads = 1  # no compile worker processes inside the sandbox
        # a precompiled header is about 150 MB (past the output limit) and pays off only in a cache
        # that outlives the run, which the sandbox's private /tmp never does
        inductor.cpp_cache_precompile_headers = False
        compiled = torch.compile(model)
        seed = self.request.timing.seeds[0]
        self.call(compiled, _fresh(self.draw(seed), self.device), seed)
        _sync(self.device)
        return compiled

    def trace_work(self) -> None:
        """The reference's aten work at both sizes, on meta tensors: the model's denominator."""
        for size, name in (("small", "main"), ("full", "full")):
            try:
                trace = trace_reference(self.programs[name], self.request.init_seed, self.request.trials[0].seed,
                                        self.dtype, self.request.backward)
            except Exception as exc:  # noqa: BLE001 - a model that needs values cannot be traced on meta
                self.emit({"event": Event.WORK, "size": size, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            self.emit({"event": Event.WORK, "size": size, "records": trace.records, "output_bytes": trace.output_bytes})


class CandidateRun(Run):
    """Import the candidate, then: correctness trials (fresh tensors every call, one call that reuses
    the previous call's tensors with new values), a grad-mode launch check, timing, ghost replay.
    Watchers run after every call; everything they see is reported, the trusted side decides."""

    def run(self) -> None:
        request: CandidateRequest = self.request
        path = os.path.join(os.getcwd(), "candidate.py")
        with open(path, "w") as f:
            f.write(request.code)
        cuda = self.device.startswith("cuda")
        recorder = LaunchRecorder(path, set(request.kernel_names), cuda=cuda)
        recorder.install()
        integrity = Integrity().capture()
        for cls in recorder.classes:
            integrity.watch(f"{cls.__module__}.{cls.__qualname__}.run", cls, "run")
        self.flagged: set[str] = set()
        self.ghost_backward: str | None = None  # a fill: the backward's own kernels are skipped (ghost replay)
        self.grad_nodes: list[str] = []  # computing autograd nodes behind the last call's outputs
        # inside a backward call, between forward and backward: verified and walked during correctness
        # and ghost replay; not in timed calls (it would be timed) nor in the work recording (whose
        # recorders are patches the snapshot would undo)
        self.watch_inside_calls = False
        audit = Audit(path, os.getcwd(), self._raw_hack, readable_roots=_library_roots())
        # A GPU driver starts helper threads on first use, so OS threads are counted on the CPU only.
        spawned = Spawned(os_threads=not cuda)
        self.integrity, self._verify = integrity, integrity.verify
        self.recorder, self.spawned = recorder, spawned
        self.reported: set[str] = set()  # replaced names already reported
        self.touched: set[int] = set()  # storages the harness gave to numpy (digests, messages)

        self.stage("compile")
        audit.install()  # last: from here on, only the candidate's own actions are of interest
        try:
            module = types.ModuleType(CANDIDATE_MODULE)
            module.__file__ = path
            sys.modules[CANDIDATE_MODULE] = module
            exec(compile(request.code, path, "exec"), module.__dict__)
            self._verify()
            model_cls = getattr(module, "ModelNew")
            models = {}
            for name in ("main", "alt"):
                if name in self.init:
                    torch.manual_seed(request.init_seed)
                    models[name] = self.place(model_cls(*self.init[name]))
            self._verify()
        except BaseException as exc:  # noqa: BLE001 - any failure of candidate code is a result
            self.fail("compile", exc, path)
            return
        self.emit({"event": Event.COMPILED})
        self.checks("import")
        self.before_harness_work()
        trials = [self.draw(t.seed, t.variant, t.program) for t in request.trials]  # only now: after import
        interpreted = not cuda
        if interpreted:  # every own launch of the correctness calls is compiled for a GPU afterwards
            recorder.compiler = GpuCompiler(known=request.known_compile_keys)
        try:
            self.correctness(models, trials)
        except BaseException as exc:  # noqa: BLE001
            self.fail("correctness", exc, path)
            return
        if interpreted and not self.compile_for_gpu():
            return
        if request.work is not None:
            self.record_work(model_cls, models["main"], trials[0])
        try:
            self.timing(models["main"])
        except BaseException as exc:  # noqa: BLE001
            self.fail("timing", exc, path)
            return
        self.ghost(models["main"], trials)

    # -- watchers ------------------------------------------------------------------------------

    def hack(self, code: str, detail: str) -> None:
        if code not in self.flagged or code == "timer_tampering":  # the first sighting says enough
            self.flagged.add(code)
            self.emit({"event": Event.HACK, "code": code, "detail": detail})

    def _raw_hack(self, code: str, detail: str) -> None:
        """From the audit hook, in the middle of candidate code: sent at once, without verifying."""
        self.flagged.add(code)
        self._emit({"event": Event.HACK, "code": code, "detail": detail})

    def before_harness_work(self) -> None:
        self._verify()
        modes = sum(length() for length in _MODE_STACKS)
        if modes:
            self.hack("reads_harness_state", f"left {modes} torch mode(s) installed after a call: "
                                             "they see the harness's own tensor operations")
            _clear_modes()

    def checks(self, when: str, quick: bool = False) -> None:
        """Snapshot identities, threads and (unless ``quick``) processes."""
        self._verify()
        tampered = sorted(self.integrity.tampered - self.reported)
        if tampered:
            self.reported |= set(tampered)
            self.hack("timer_tampering", f"{when}: replaced {', '.join(tampered[:8])}"
                                         + (f" and {len(tampered) - 8} more" if len(tampered) > 8 else ""))
        threads = self.spawned.threads()
        processes = 0 if quick else self.spawned.processes()
        if threads or processes:
            self.hack("thread_or_process_spawned",
                      f"{when}: {threads} thread(s), {processes} process(es) still alive after the call")

    def quick_checks(self, when: str) -> None:
        self.checks(when, quick=True)

    # -- stages --------------------------------------------------------------------------------

    def correctness(self, models: dict, trials: list[list]) -> None:
        self.stage("correctness")
        self.watch_inside_calls = True
        recorder = self.recorder
        live: list | None = None
        for i, (trial, inputs) in enumerate(zip(self.request.trials, trials)):
            self.before_harness_work()
            if trial.reuse and live is not None:  # same tensor objects, new values
                for buf, src in zip(live, inputs):
                    if isinstance(buf, torch.Tensor):
                        _copy(buf, src)
                args = live
            else:
                args = _fresh(inputs, self.device)
            recorder.reset()
            self.backward_launches, self.grad_nodes = None, []
            harness = self.harness_s
            start = perf_counter()
            out = self.call(models[trial.program], args, trial.seed)
            _sync(self.device)
            # the call alone: the timed calls exclude checks and the harness's work inside a call too
            host_ms = (perf_counter() - start - (self.harness_s - harness)) * 1e3
            self._verify()  # first thing after candidate code: later lookups see the originals
            self.checks(f"trial {i}")
            foreign = [j for j, o in enumerate(out) if foreign_storage(o, self.touched)]  # before digests touch it
            live = args
            event = {"event": Event.TRIAL, "index": i, "launches": recorder.launches,
                     "side_launches": recorder.side_launches, "digests": [digest(x) for x in args],
                     "types": [_type_name(o) for o in out], "foreign": foreign, "host_ms": host_ms}
            if self.request.backward:
                event.update(labels=self.labels, backward_launches=self.backward_launches, grad_nodes=self.grad_nodes)
            self.send_outputs(event, out)
            self.touched |= {_storage_ptr(t) for t in (*args, *out) if type(t) is torch.Tensor}
            del out  # nothing of a checked output stays around for the next call to find
        self.watch_inside_calls = False
        self.stage("verification")
        self.before_harness_work()
        recorder.reset()
        with torch.enable_grad():
            self.forward(models["main"], _fresh(trials[0], self.device))
        self._verify()
        _sync(self.device)
        self.emit({"event": Event.GRAD_LAUNCHES, "launches": recorder.launches})
        self.checks("grad-mode call")

    def compile_for_gpu(self) -> bool:
        """Compile the own kernels the correctness calls launched for a GPU target, as a GPU would
        have before running them; False (and an error event) when the compiler refuses one."""
        compiler, self.recorder.compiler = self.recorder.compiler, None
        self.stage("gpu_compile")
        self.before_harness_work()
        try:
            records = compiler.compile_all()
        except Exception as exc:  # noqa: BLE001 - a broken compile step is reported, not fatal
            records = []
            self.emit({"event": Event.GPU_COMPILE, "records": [], "error": f"{type(exc).__name__}: {exc}"[:500]})
        else:
            self.emit({"event": Event.GPU_COMPILE, "records": records, "reused": list(compiler.reused),
                       "dropped": compiler.dropped})
        refused = next((r for r in records if not r.get("ok")), None)
        if refused is not None:
            self.emit({"event": Event.ERROR, "stage": "gpu_compile", "where": [],
                       "message": f"the GPU compiler rejects kernel {refused.get('kernel')} (the interpreter ran it "
                                  f"as Python, a GPU would not):\n{refused.get('error')}"[:2000]})
            return False
        return True

    def record_work(self, model_cls, model, inputs: list) -> None:
        """The work of one call at the small size (every program runs), then at the benchmark size
        (a secret sample of programs, heavy torch ops elided), if its inputs fit. Never timed."""
        plan = self.request.work
        self.stage("work")
        self.before_harness_work()
        seed = self.request.trials[0].seed
        small = record_call(self.caller(model, seed), _fresh(inputs, self.device))
        self._verify()
        self.checks("work call")
        self.emit({"event": Event.WORK, "size": "small", "records": small.records})
        full = self.programs["full"]
        if input_bytes(full, seed, self.dtype) * 3 > plan.cap_mb << 20:
            self.emit({"event": Event.WORK, "size": "full", "skipped": "memory"})
            return
        big_inputs = big_model = None
        try:
            self.before_harness_work()
            big_inputs = self.draw(seed, program="full")
            torch.manual_seed(self.request.init_seed)
            big_model = self.place(model_cls(*self.init["full"]))
            self._verify()
            sampling = Sampling(plan.seed, hints=tuple(small.hints), singles=FULL_SIZE_SINGLES, run=FULL_SIZE_RUN,
                                full_grid=FULL_SIZE_WHOLE_GRID)
            with _budget(FULL_SIZE_WORK_BUDGET_S):
                big = record_call(self.caller(big_model, seed), big_inputs, sampling, max_ops=FULL_SIZE_WORK_OPS)
        except Exception as exc:  # noqa: BLE001 - the small-size work, scaled, stands in
            self.emit({"event": Event.WORK, "size": "full", "error": f"{type(exc).__name__}: {exc}"[:500]})
        else:
            self.emit({"event": Event.WORK, "size": "full", "records": big.records})
        finally:
            del big_inputs, big_model
            self._verify()
            self.checks("full-size work call")

    def timing(self, model) -> None:
        if not self.request.timing:
            return
        self.take_timing_slot()
        self.stage("timing")
        self.timed_calls(lambda xs, seed: self.call(model, xs, seed), self.recorder, after=self.quick_checks)
        self.checks("timing")
        if self.request.profile and self.device.startswith("cuda"):
            inputs = _fresh(self.draw(self.request.timing.seeds[0]), self.device)
            self.emit({"event": Event.PROFILE, **self.timer.profile(lambda: model(*inputs), self.recorder)})

    def ghost(self, model, trials: list[list]) -> None:
        """Ghost replay, last because it poisons buffers the model may keep: every own kernel is
        skipped and the tensors it would write are filled (NaN, then random values), then skipped
        with nothing filled (a kernel passing in place over a result torch already computed). The
        inputs are a correctness trial's: the timed calls, which ran since, used inputs of their own,
        so a buffer the model kept does not hold this trial's answer."""
        self.stage("ghost")
        self.watch_inside_calls = True
        pos = next((i for i, t in enumerate(self.request.trials) if t.program == "main" and not t.reuse), 0)
        recorder = self.recorder
        # a backward task replays its backward alone too: real outputs, then gradients without own kernels
        phases = ("all", "backward") if self.request.backward else ("all",)
        for phase, fill in ((phase, fill) for phase in phases for fill in GHOST_FILLS):
            self.before_harness_work()
            inputs = _fresh(trials[pos], self.device)
            recorder.protected = {_storage_ptr(x) for x in inputs if isinstance(x, torch.Tensor)}
            recorder.protected |= {_storage_ptr(p) for p in (*model.parameters(), *model.buffers())}
            recorder.reset()
            if phase == "all":
                recorder.ghost = fill
            else:
                self.ghost_backward = fill
            try:
                out = self.call(model, inputs, self.request.trials[pos].seed)
                self._verify()
                _sync(self.device)
            except BaseException:  # noqa: BLE001 - failing without its kernels is what an honest model does
                out = None
            finally:
                recorder.ghost = self.ghost_backward = None
            event = {"event": Event.GHOST, "index": pos, "fill": fill, "launches": recorder.launches, "phase": phase}
            if out is None:
                self.emit({**event, "raised": True})
            else:
                self.send_outputs(event, out)

    # -- a backward task's calls -----------------------------------------------------------------

    def params(self, model) -> list:
        return steps.named_params(model, self.request.grad_params)

    def after_forward(self, outputs: list) -> None:
        """Between a backward call's forward and its backward: put back what the forward replaced, then
        walk the graph it built."""
        if self.watch_inside_calls:
            start = perf_counter()
            self._verify()
            self.grad_nodes = steps.foreign_nodes(outputs)
            self.harness_s += perf_counter() - start

    def backward_pass(self, targets: list, upstream: list, xs: list, params: list) -> list:
        """The gradients, with the own launches made meanwhile counted, and every own kernel skipped
        when the ghost replay of the backward asks for it."""
        recorder = self.recorder
        before, outer = recorder.launches, recorder.ghost
        recorder.ghost = self.ghost_backward or outer
        try:
            return super().backward_pass(targets, upstream, xs, params)
        finally:
            recorder.ghost = outer
            self.backward_launches = recorder.launches - before

    def fail(self, stage: str, exc: BaseException, path: str) -> None:
        """Report a failure with the traceback lines that point into the candidate's code."""
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if f.filename == path]
        lines = [f"line {f.lineno}, in {f.name}: {(f.line or linecache.getline(path, f.lineno)).strip()}" for f in own[-3:]]
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        message += f"\n{hint}" if (hint := explain(exc)) else ""
        self.emit({"event": Event.ERROR, "stage": stage, "message": message[-2000:], "where": lines})


# -- tensor helpers, bound before the candidate is imported (never looked up on its tensors) ------

_copy = torch.Tensor.copy_
_numel = torch.Tensor.numel
_untyped_storage = torch.Tensor.untyped_storage
_to = torch.Tensor.to


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, DTYPES[name])


def _storage_ptr(t: torch.Tensor) -> int:
    return _untyped_storage(t).data_ptr()


def _fresh(values: list, device: str) -> list:
    """Copies with their own storage: no call sees a tensor another call (or the draw) holds."""
    return [_to(v, device, copy=True) if isinstance(v, torch.Tensor) else v for v in values]


class OverBudget(Exception):
    """The full-size work recording ran past its budget."""


@contextlib.contextmanager
def _budget(seconds: float):
    """Interrupt the block after ``seconds`` of wall time (SIGALRM; nothing else in the run uses it)."""
    def expire(signum, frame):
        raise OverBudget(f"the full-size recording took more than {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _clear_modes() -> None:
    while torch._C._len_torch_function_stack():
        torch._C._pop_torch_function_stack()
    while torch._C._len_torch_dispatch_stack():
        torch._C._pop_torch_dispatch_stack()


def _library_roots() -> list[str]:
    """Where Python, its packages and the harness's package live: reading them is what imports do.
    Not ``sys.path`` as such: the worker's start folder is on it, and the rest of a checkout the
    harness was installed from (tasks, tests) must not count as a library."""
    import triton

    packages = {os.path.dirname(os.path.dirname(m.__file__)) for m in (torch, triton)}
    harness = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return sorted({sys.prefix, sys.base_prefix, harness, *packages})


def _type_name(value) -> str:
    t = type(value)
    return "Tensor" if t is torch.Tensor else f"{t.__module__}.{t.__qualname__}"


def run_request(request: RunRequest, emit, wait_for_slot=None) -> None:
    """Run one request. With ``request.slots``, ``wait_for_slot(mode)`` blocks until the device's slot
    is held in ``mode`` (``protocol.SLOT_ORDER``): alone while the timer calibrates, shared for import
    and checks, alone from the timing stage on."""
    torch.set_num_threads(1)
    slot = wait_for_slot if request.slots and wait_for_slot is not None else _no_slot
    runner = CandidateRun if isinstance(request, CandidateRequest) else ReferenceRun
    slot(SLOT_ORDER[0])
    run = runner(request, emit, slot)  # its timer calibrates while the device is held alone
    slot(SLOT_ORDER[1])
    run.run()
    done = {"event": Event.DONE, "forward_s": run.forward_s}
    if request.device.startswith("cuda") and not isinstance(request, CandidateRequest):
        done["device_name"] = torch.cuda.get_device_name(request.device)  # the peaks the speed of light uses
    emit(done)


def _no_slot(mode: str) -> None:
    """No device slot asked for (the interpreter by default): every stage runs when it comes."""
