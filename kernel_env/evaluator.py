"""The evaluator: (task, LLM response) -> EvalResult, on a pool of warm sandboxed workers.

``Evaluator.submit`` returns a future, so a vector env or a trainer keeps every worker busy; the
reference side of each task is computed once per (task, size, device, seeds, versions) and cached,
and whole results are cached per (task, code, backend, config).
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from . import wire
from .config import EvalConfig, library_versions
from .feedback import feedback
from .judge import Judge, Reference
from .plan import Trial, candidate_indices, reference_plan, timing_sets
from .result import EvalResult
from .sandbox import SandboxProcess, WorkerDied
from .submission import SubmissionError, extract_code, parse_submission, strict_codes
from .timing import DEFAULTS as TIMING_DEFAULTS

BACKENDS = ("auto", "cuda", "interpreter")
#: Tasks whose reference outputs stay in memory (the bundled suite fits; a trainer cycling through
#: more recomputes the least recently used ones).
MAX_REFERENCES = 128


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend != "auto":
        return backend
    import torch

    return "cuda" if torch.cuda.is_available() else "interpreter"


def default_size(backend: str) -> str:
    return "full" if backend == "cuda" else "small"


def result_key(task, code: str, size: str, backend: str, config: EvalConfig) -> tuple:
    """What a whole result depends on: the task's text, the candidate's code, where and how it ran."""
    return (task.hash, size, hashlib.sha256(code.encode()).hexdigest(), backend, config.digest)


@dataclass
class _Job:
    task: object
    response: str
    size: str
    config: EvalConfig


class Evaluator:
    """A pool of sandboxed workers shared by every caller (envs, vector envs, trainers)."""

    def __init__(self, backend: str = "auto", workers: int | None = None, config: EvalConfig | None = None,
                 isolation: str = "auto", cache_size: int = 4096):
        self.backend = resolve_backend(backend)
        self.config = config or EvalConfig()
        self.isolation = isolation
        if workers is None:
            workers = self._device_count() if self.backend == "cuda" else (os.cpu_count() or 1)
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.n_workers = workers
        self._idle: queue.Queue = queue.Queue()
        for slot in range(workers):
            self._idle.put((slot, None))  # started on first use
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kernel-env-eval")
        self._lock = threading.Lock()
        self._references: OrderedDict[tuple, Future] = OrderedDict()  # least recently used first
        self._results: OrderedDict[tuple, EvalResult] = OrderedDict()
        self._cache_size = cache_size
        self._started: list[SandboxProcess] = []
        self._versions = library_versions()  # same interpreter as the workers: part of the reference key
        self._rng = random.Random(secrets.randbits(64))
        self.restarts = 0
        self._closed = False

    @staticmethod
    def _device_count() -> int:
        import torch

        return max(1, torch.cuda.device_count())

    # -- public API -------------------------------------------------------------------------------

    def submit(self, task, response: str, size: str | None = None, config: EvalConfig | None = None) -> Future:
        if self._closed:
            raise RuntimeError("the evaluator is closed")
        job = _Job(task, response, size or default_size(self.backend), config or self.config)
        try:
            hit = self._cached(self._cache_key(job, extract_code(response)), time.perf_counter())
        except SubmissionError:
            hit = None
        if hit is not None:  # answered here: a thread-pool round trip would cost more than the lookup
            done: Future = Future()
            done.set_result(hit)
            return done
        return self._pool.submit(self._evaluate, job)

    def map(self, items, size: str | None = None, config: EvalConfig | None = None) -> list[EvalResult]:
        """Evaluate many (task, response) pairs in parallel; results in input order."""
        futures = [self.submit(task, response, size, config) for task, response in items]
        return [f.result() for f in futures]

    def evaluate(self, task, response: str, size: str | None = None, config: EvalConfig | None = None) -> EvalResult:
        return self.submit(task, response, size, config).result()

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True)
        for proc in self._started:
            proc.close()

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __deepcopy__(self, memo) -> "Evaluator":
        """A pool is shared, never copied: Gymnasium deep-copies env kwargs (``evaluator=``)."""
        return self

    def worker_pids(self) -> list[int]:
        return [p.proc.pid for p in self._started if p.alive]

    # -- workers ----------------------------------------------------------------------------------

    def _start(self, slot: int) -> SandboxProcess:
        env = {}
        if self.backend == "cuda":  # keep the GPUs this process was given (Ray, Slurm, CUDA_VISIBLE_DEVICES=2,3)
            visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            env["CUDA_VISIBLE_DEVICES"] = visible[slot % len(visible)] if visible else str(slot)
        proc = SandboxProcess(self.backend, self.isolation, env)
        with self._lock:
            self._started.append(proc)
        return proc

    def _run_on_worker(self, request: dict, timeout_s: float) -> list[tuple[dict, list[bytes]]]:
        """Run one request on an idle worker. A worker that dies is replaced; the events so far
        plus a synthetic exit event say what happened."""
        slot, proc = self._idle.get()
        events: list[tuple[dict, list[bytes]]] = []
        try:
            if proc is None or not proc.alive:
                proc = self._start(slot)
            for event, blobs in proc.request(request, timeout_s):
                events.append((event, blobs))
        except WorkerDied as exc:
            events.append(({"event": "exit", "worker_died": True, "detail": str(exc)}, []))
            if proc is not None:
                proc.close()
                with self._lock:
                    if proc in self._started:
                        self._started.remove(proc)
                self.restarts += 1
            proc = None
        finally:
            self._idle.put((slot, proc))
        return events

    # -- the pipeline -----------------------------------------------------------------------------

    def _limits(self, config: EvalConfig, result_mb: int | None = None) -> dict:
        return {
            "timeout_s": config.timeout_s, "cpu_time_s": config.cpu_time_s, "memory_mb": config.memory_mb,
            "max_processes": config.max_processes, "max_output_mb": config.max_output_mb,
            "max_result_mb": result_mb or config.max_result_mb,
        }

    def _timing(self, config: EvalConfig, sets: list[int]) -> dict:
        defaults = TIMING_DEFAULTS[self.backend]
        return {
            "warmup": defaults["warmup"] if config.warmup is None else config.warmup,
            "iters": defaults["iters"] if config.iters is None else config.iters,
            "sets": sets,
        }

    def _device(self) -> str:
        return "cuda:0" if self.backend == "cuda" else "cpu"

    def _programs(self, task, size: str) -> tuple[str, str | None]:
        alt = f"{size}_alt"
        return task.program(size), (task.program(alt) if task.has_size(alt) else None)

    def _reference(self, task, size: str, config: EvalConfig) -> tuple[list[Trial], Reference]:
        program, alt = self._programs(task, size)
        plan = reference_plan(config, alt is not None)
        key = (task.hash, size, self.backend, config.seed, config.trials, config.extra_trials, config.input_variants,
               config.warmup, config.iters, tuple(sorted(self._versions.items())))
        with self._lock:
            future = self._references.get(key)
            owner = future is None
            if owner:
                future = self._references[key] = Future()
                while len(self._references) > MAX_REFERENCES:  # full-size outputs are large: keep the recent ones
                    self._references.popitem(last=False)
            else:
                self._references.move_to_end(key)
        if owner:
            try:
                future.set_result(self._compute_reference(program, alt, plan, config))
            except BaseException as exc:
                with self._lock:
                    self._references.pop(key, None)  # let a later call try again
                future.set_exception(exc)
        return plan, future.result()

    def _compute_reference(self, program: str, alt: str | None, plan: list[Trial], config: EvalConfig) -> Reference:
        request = {
            "kind": "reference", "backend": self.backend, "device": self._device(), "program": program,
            "alt_program": alt, "trials": [t.to_dict() for t in plan], "init_seed": config.seed,
            "timing": self._timing(config, timing_sets(plan)), "limits": self._limits(config),
            "fingerprint_key": 0,
        }
        outputs: list = [None] * len(plan)
        digests: list = [None] * len(plan)
        times: list[float] = []
        error = None
        for event, blobs in self._run_on_worker(request, config.timeout_s):
            kind = event.get("event")
            if kind == "trial":
                i = int(event["index"])
                outputs[i] = [wire.unpack_value(d, blobs) for d in event["outputs"]]
                digests[i] = event["digests"]
            elif kind == "timing_end":
                times = [float(r["ms"]) for r in event["records"]]
            elif kind == "error":
                error = event.get("message")
            elif kind == "exit" and (event.get("killed_for") or event.get("signal") or event.get("worker_died")):
                error = error or f"reference run ended: {event}"
        if error or any(o is None for o in outputs):
            raise RuntimeError(f"the task's reference failed: {error or 'missing outputs'}")
        return Reference(outputs=outputs, digests=digests, times_ms=times)

    def _cache_key(self, job: _Job, code: str) -> tuple:
        return result_key(job.task, code, job.size, self.backend, job.config)

    def _cached(self, key: tuple, started: float) -> EvalResult | None:
        """A copy of a cached result (callers may mutate theirs), stamped as a cache hit."""
        with self._lock:
            cached = self._results.get(key)
            if cached is None:
                return None
            self._results.move_to_end(key)
        hit = EvalResult.from_dict(cached.to_dict())
        hit.timings = {"total": round(time.perf_counter() - started, 6), "cache_hit": 1.0}
        return hit

    def _evaluate(self, job: _Job) -> EvalResult:
        started = time.perf_counter()
        task, config = job.task, job.config
        result = EvalResult(task_id=task.id, backend=self.backend, size=job.size, device=self._device())
        try:
            submission = parse_submission(job.response)
        except SubmissionError as exc:
            result.error = str(exc)
            result.feedback = feedback(result)
            result.timings["total"] = round(time.perf_counter() - started, 4)
            return result
        result.findings = list(submission.findings)
        cache_key = self._cache_key(job, submission.code)
        hit = self._cached(cache_key, started)
        if hit is not None:
            return hit

        try:
            t0 = time.perf_counter()
            plan, reference = self._reference(task, job.size, config)
            result.timings["reference"] = round(time.perf_counter() - t0, 4)
        except Exception as exc:  # a broken task is reported, never raised into an RL loop
            result.error = str(exc)
            result.stage = "compile"
            result.feedback = "The evaluator could not run the task's reference; this is not your fault."
            return result
        chosen = candidate_indices(plan, reference.usable(), self._rng)
        key = secrets.randbits(31)
        program, alt = self._programs(task, job.size)
        timing = self._timing(config, [chosen.index(i) for i in timing_sets(plan) if i in chosen])
        # a candidate sends about what the reference sent (outputs per trial, ghost replays): twice
        # that, plus room for messages, bounds what it can make the trusted side hold in memory
        result_mb = 2 * (reference.nbytes >> 20) + 64
        request = {
            "kind": "candidate", "backend": self.backend, "device": self._device(), "program": program,
            "alt_program": alt, "code": submission.code, "kernel_names": submission.kernels,
            "trials": [plan[i].to_dict() for i in chosen], "init_seed": config.seed,
            "timing": timing if timing["sets"] else None, "limits": self._limits(config, result_mb),
            "fingerprint_key": key, "profile": config.profile,
        }
        t0 = time.perf_counter()
        events = self._run_on_worker(request, config.timeout_s)
        result.timings["sandbox"] = round(time.perf_counter() - t0, 4)
        result.stage = "compile"
        judge = Judge(result, plan, chosen, reference, config, key, submission.findings)
        try:
            result = judge.verdict(events)
        except Exception as exc:  # only a forged or corrupted report gets here: never raise into an RL loop
            result.correct, result.speedup, result.runtime_ms, result.coverage = False, None, None, None
            result.error = f"the sandbox sent a malformed report ({type(exc).__name__}: {exc})"
            result.hacks = sorted({*result.hacks, "sandbox_violation"})
        if config.strict:
            result.hacks = sorted(set(result.hacks) | strict_codes(submission.findings))
        result.feedback = feedback(result)
        result.timings["total"] = round(time.perf_counter() - started, 4)
        if not any(e.get("worker_died") for e, _ in events):
            with self._lock:
                self._results[cache_key] = EvalResult.from_dict(result.to_dict())  # callers may mutate theirs
                while len(self._results) > self._cache_size:
                    self._results.popitem(last=False)
        return result


_default: Evaluator | None = None
_default_lock = threading.Lock()


def default_evaluator(backend: str = "auto") -> Evaluator:
    """A process-wide pool, created on first use, so ``evaluate()`` calls share warm workers."""
    global _default
    with _default_lock:
        if _default is None or _default._closed or _default.backend != resolve_backend(backend):
            if _default is not None:
                _default.close()  # a pool for another backend: its workers would linger otherwise
            _default = Evaluator(backend=backend)
        return _default


def evaluate(task, response: str, backend: str = "auto", size: str | None = None,
             config: EvalConfig | None = None) -> EvalResult:
    """Evaluate one response for one task on the shared default pool."""
    return default_evaluator(backend).evaluate(task, response, size=size, config=config)
