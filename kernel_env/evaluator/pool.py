"""The local evaluator: (task, LLM response) -> EvalResult, on a pool of warm sandboxed workers.

``Evaluator.submit`` returns a future, so a vector env or a trainer keeps every worker busy; the
reference side of each task is computed once per (task, size, device, seeds, versions) and cached,
and whole results are cached per (task, code, backend, config). Each result is assembled once, in
``_result``, from the judge's ``Verdict``.
"""

from __future__ import annotations

import os
import queue
import random
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from tasks.task import declares_backward

from ..config import EvalConfig, library_versions
from ..protocol import CandidateRequest, ReferenceRequest, Trial, WorkPlan, limits_of
from ..scoring.feedback import feedback
from ..scoring.result import EvalResult
from .base import BaseEvaluator, default_size, require_local
from .cache import ResultCache, result_key
from .compile_cache import CompileCache, InvalidRecord
from .disk_cache import DiskCache, ReferenceStore, open_trusted_cache
from .judge import Judge, Verdict
from .plan import SEED_SETS, SeedSet, candidate_indices, new_secret, reference_plan, timing_plan
from .report import MalformedReport, Reference, lost_worker, parse_report
from .sandbox import RequestRefused, SandboxProcess, WorkerDied
from .scheduler import DeviceSlot, Hold, default_workers_per_device
from .submission import SubmissionError, extract_code, parse_submission

#: The GPU target the interpreter backend compiles own kernels for, and the most known compiles a
#: request carries (the most recent ones).
COMPILE_TARGET, MAX_KNOWN_COMPILES = "cuda:90:32", 512
#: Tasks whose reference outputs stay in memory (the bundled suite fits; a trainer cycling through
#: more recomputes the least recently used ones).
MAX_REFERENCES = 128


@dataclass
class _Job:
    task: object
    response: str
    size: str
    config: EvalConfig


class Evaluator(BaseEvaluator):
    """A pool of sandboxed workers shared by every caller (envs, vector envs, trainers)."""

    def __init__(self, backend: str = "auto", workers: int | None = None, config: EvalConfig | None = None,
                 isolation: str = "auto", cache_size: int = 4096, seed_secret: int | None = None,
                 workers_per_device: int | None = None, timing_slots: bool | None = None,
                 disk_cache: bool | DiskCache | None = None):
        super().__init__()
        self.backend = require_local(backend)
        self.config = config or EvalConfig()
        self.isolation = isolation
        devices = self._device_count() if self.backend == "cuda" else 1
        if workers is None:
            if self.backend == "cuda":
                workers = devices * (workers_per_device or default_workers_per_device(devices, os.cpu_count() or 1))
            else:
                workers = workers_per_device or os.cpu_count() or 1
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.n_workers = workers
        # one measurement slot per device (worker ``i`` runs on device ``i % devices``): on CUDA runs
        # check in parallel and time alone; on the interpreter timing is not the reward, so off
        self.timing_slots = self.backend == "cuda" if timing_slots is None else timing_slots
        self._slots = [DeviceSlot() for _ in range(devices)]
        self._idle: queue.Queue = queue.Queue()
        for slot in range(workers):
            self._idle.put((slot, None))  # started on first use
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kernel-env-eval")
        self._lock = threading.Lock()
        self._references: OrderedDict[tuple, Future] = OrderedDict()  # least recently used first
        # disk_cache: None = on unless $KERNEL_ENV_DISK_CACHE=0, False = off, True or a DiskCache = on;
        # refused where candidates could reach the folder (see disk_cache.open_trusted_cache)
        self.disk = open_trusted_cache(disk_cache, isolation, self.backend)
        if seed_secret is None and self.disk is not None:
            seed_secret = self.disk.secret()  # the machine's: this process's seed sets match the stored references
        self._seed_secret = new_secret() if seed_secret is None else seed_secret  # never sent to a sandbox
        self.stored_references = ReferenceStore(self.disk, self.backend)
        self.results = ResultCache(cache_size)
        self._started: list[SandboxProcess] = []
        self._versions = library_versions()  # same interpreter as the workers: part of the reference key
        self._rng = random.Random(secrets.randbits(64))
        self.restarts = 0
        self.compiles = CompileCache(disk=self.disk)  # GPU-target compiles of own kernels, by source and signature
        self.isolation_used = ""  # known once a worker has started
        self._modeller: Evaluator | None = None  # interpreter workers modelling CUDA candidates (model_on_cuda)

    @staticmethod
    def _device_count() -> int:
        import torch

        return max(1, torch.cuda.device_count())

    # -- public API -------------------------------------------------------------------------------

    def submit(self, task, response: str, size: str | None = None, config: EvalConfig | None = None) -> Future:
        self._check_open()
        job = _Job(task, response, size or default_size(self.backend), config or self.config)
        try:
            hit = self.results.get(self._cache_key(job, extract_code(response)), time.perf_counter())
        except SubmissionError:
            hit = None
        if hit is not None:  # answered here: a thread-pool round trip would cost more than the lookup
            done: Future = Future()
            done.set_result(hit)
            return done
        return self._pool.submit(lambda: self._evaluate_and_cache(job)[0])

    def worker_pids(self) -> list[int]:
        return [p.proc.pid for p in self._started if p.alive]

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        for proc in self._started:
            proc.close()
        if self._modeller is not None:
            self._modeller.close()

    # -- workers ----------------------------------------------------------------------------------

    def _start(self, slot: int) -> SandboxProcess:
        env = {}
        if self.backend == "cuda":  # keep the GPUs this process was given (Ray, Slurm, CUDA_VISIBLE_DEVICES=2,3)
            visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            device = slot % len(self._slots)
            env["CUDA_VISIBLE_DEVICES"] = visible[device % len(visible)] if visible else str(device)
        proc = SandboxProcess(self.backend, self.isolation, env)
        self.isolation_used = "bwrap" if proc.sandboxed else "none"
        with self._lock:
            self._started.append(proc)
        return proc

    def _run_on_worker(self, request, timeout_s: float) -> list[tuple[dict, list[bytes]]]:
        """Run one request on an idle worker. A worker that dies is replaced; the events so far
        plus a synthetic exit event say what happened."""
        slot, proc = self._idle.get()
        events: list[tuple[dict, list[bytes]]] = []
        hold = Hold(self._slots[slot % len(self._slots)]) if self.timing_slots else None
        try:
            if proc is None or not proc.alive:
                proc = self._start(slot)
            for event, blobs in proc.request(replace(request, slots=hold is not None), timeout_s, hold):
                events.append((event, blobs))
        except WorkerDied as exc:
            events.append(lost_worker(str(exc)))
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

    def _device(self) -> str:
        return "cuda:0" if self.backend == "cuda" else "cpu"

    def _programs(self, task, size: str) -> tuple[str, str | None]:
        alt = f"{size}_alt"
        return task.program(size), (task.program(alt) if task.has_size(alt) else None)

    def _seed_set(self, task, size: str, config: EvalConfig) -> SeedSet:
        """The config's fixed seed set, or one of ``SEED_SETS`` secret ones for this task, at random."""
        fixed = SeedSet.of(config)
        if fixed is not None:
            return fixed
        with self._lock:
            number = self._rng.randrange(SEED_SETS)
        return SeedSet.derive(self._seed_secret, task.hash, size, config.digest, number)

    def _reference(self, task, size: str, config: EvalConfig, seeds: SeedSet) -> tuple[list[Trial], Reference]:
        program, alt = self._programs(task, size)
        plan = reference_plan(config, alt is not None, seeds)
        key = (task.hash, size, self.backend, seeds, config.trials, config.extra_trials, config.input_variants,
               config.warmup, config.iters, config.timing_min_iters, config.timing_rel_se, config.timing_cap_s,
               config.baseline, config.dtype, tuple(sorted(self._versions.items())))
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
                work = self._reference_work(task, config)
                future.set_result(self.stored_references.get_or_compute(
                    key, self._reference_request(program, alt, plan, config, seeds, work), len(plan),
                    lambda: self._compute_reference(program, alt, plan, config, seeds, work)))
            except BaseException as exc:
                with self._lock:
                    self._references.pop(key, None)  # let a later call try again
                future.set_exception(exc)
        return plan, future.result()

    def _work_plan(self, task, config: EvalConfig, code: str = "") -> WorkPlan | None:
        """On the interpreter, both runs record their work for the modelled GPU time. The program
        sample of the full-size recording is secret but fixed per code, so the same code always gets
        the same modelled time from one evaluator."""
        if self.backend != "interpreter":
            return None
        seed = SeedSet.derive(self._seed_secret, "work", task.hash, code).base
        return WorkPlan(full_program=task.program("full"), seed=seed, cap_mb=config.memory_mb // 4)

    def _reference_work(self, task, config: EvalConfig) -> WorkPlan | None:
        """The reference traces its aten work on meta tensors on both backends: the modelled time's
        denominator on the interpreter, the speed of light's numerator on CUDA (the candidate records
        its work on the interpreter only)."""
        plan = self._work_plan(task, config)
        if plan is None and self.backend == "cuda":
            plan = WorkPlan(full_program=task.program("full"), seed=0, cap_mb=config.memory_mb // 4)
        return plan

    def _reference_request(self, program: str, alt: str | None, plan: list[Trial], config: EvalConfig,
                           seeds: SeedSet, work: WorkPlan | None = None) -> ReferenceRequest:
        return ReferenceRequest(
            backend=self.backend, device=self._device(), program=program, alt_program=alt, trials=tuple(plan),
            init_seed=seeds.seed("init"), timing=timing_plan(config, self.backend, seeds),
            limits=limits_of(config), fingerprint_key=seeds.fingerprint_key, work=work, dtype=config.dtype,
            backward=declares_backward(program))

    def _compute_reference(self, program: str, alt: str | None, plan: list[Trial], config: EvalConfig,
                           seeds: SeedSet, work: WorkPlan | None = None) -> Reference:
        events = self._run_on_worker(self._reference_request(program, alt, plan, config, seeds, work),
                                     config.timeout_s)
        try:
            report = parse_report(events, len(plan))
        except MalformedReport as exc:
            raise RuntimeError(f"the task's reference failed: {exc}") from exc
        return Reference.from_report(report, len(plan))

    def _known_compiles(self) -> list[str]:
        return self.compiles.known(COMPILE_TARGET, self._versions["triton"])[-MAX_KNOWN_COMPILES:]

    def _keep_compiles(self, records: list) -> None:
        """Successful GPU-target compiles, validated: a later request skips them. A refusal is never
        kept, so the same kernel is always refused again."""
        for record in records[:MAX_KNOWN_COMPILES]:
            if not isinstance(record, dict) or record.get("ok") is not True:
                continue
            try:
                self.compiles.put(record, COMPILE_TARGET, self._versions["triton"])
            except InvalidRecord:
                continue

    def _cache_key(self, job: _Job, code: str) -> tuple:
        return result_key(job.task, code, job.size, self.backend, job.config)

    def outcome(self, task, response: str, size: str | None = None,
                config: EvalConfig | None = None) -> tuple[EvalResult, bool]:
        """Evaluate in this thread: the result, and whether a cache may keep it (not when the machine
        rather than the code decided it: a lost worker, a harness failure). For callers that keep a
        cache of their own, such as the Ray driver."""
        return self._evaluate_and_cache(_Job(task, response, size or default_size(self.backend), config or self.config))

    def _evaluate_and_cache(self, job: _Job) -> tuple[EvalResult, bool]:
        result, cacheable = self._evaluate(job)
        if cacheable:
            self.results.put(self._cache_key(job, extract_code(job.response)), result)
        return result, cacheable

    def _evaluate(self, job: _Job) -> tuple[EvalResult, bool]:
        started = time.perf_counter()
        task, config = job.task, job.config
        context = {"backend": self.backend, "size": job.size, "device": self._device()}
        try:
            submission = parse_submission(job.response)
        except SubmissionError as exc:
            return self._result(job, Verdict.unparsed(str(exc)), [], {}, started), False
        hit = self.results.get(self._cache_key(job, submission.code), started)
        if hit is not None:
            return hit, False
        timings: dict[str, float] = {}
        seeds = self._seed_set(task, job.size, config)
        try:
            t0 = time.perf_counter()
            plan, reference = self._reference(task, job.size, config, seeds)
            timings["reference"] = round(time.perf_counter() - t0, 4)
        except Exception as exc:  # a broken task is reported, never raised into an RL loop
            return EvalResult.harness_failure(task.id, str(exc), findings=list(submission.findings), **context), False
        chosen = candidate_indices(plan, reference.usable(), self._rng)
        program, alt = self._programs(task, job.size)
        # a candidate sends about what the reference sent (outputs per trial, ghost replays): twice
        # that, plus room for messages, bounds what it can make the trusted side hold in memory
        result_mb = 2 * (reference.nbytes >> 20) + 64
        request = CandidateRequest(
            backend=self.backend, device=self._device(), program=program, alt_program=alt,
            trials=tuple(plan[i] for i in chosen), init_seed=seeds.seed("init"),
            timing=timing_plan(config, self.backend, seeds), limits=limits_of(config, result_mb),
            fingerprint_key=seeds.fingerprint_key, code=submission.code,
            kernel_names=tuple(submission.kernels), profile=config.profile, work=self._work_plan(task, config, submission.code),
            known_compile_keys=tuple(self._known_compiles()), dtype=config.dtype, backward=declares_backward(program),
            grad_params=reference.grad_params)
        side_model = self._model_elsewhere(job)
        t0 = time.perf_counter()
        try:
            events = self._run_on_worker(request, config.timeout_s)
        except RequestRefused as exc:
            return EvalResult.harness_failure(task.id, str(exc), findings=list(submission.findings), **context), False
        timings["sandbox"] = round(time.perf_counter() - t0, 4)
        try:
            report = parse_report(events, len(chosen))
        except MalformedReport as exc:  # only a forged or corrupted report gets here
            return self._result(job, Verdict.malformed(str(exc)), submission.findings, timings, started), True
        try:
            verdict = Judge(plan, chosen, reference, config, submission.findings).verdict(report)
        except Exception as exc:  # values out of range in a well-formed report: never raise into an RL loop
            verdict = Verdict.malformed(f"{type(exc).__name__}: {exc}")
        if not verdict.hacks:  # a run with hack codes may have forged its compile records too
            self._keep_compiles(report.compiles)
        if side_model is not None:
            t0 = time.perf_counter()
            verdict.modelled = side_model.result().modelled
            timings["model_wait"] = round(time.perf_counter() - t0, 4)
        return self._result(job, verdict, submission.findings, timings, started), not report.exit.worker_died

    def _model_elsewhere(self, job: _Job) -> Future | None:
        """With ``model_on_cuda``, the same code evaluated on interpreter workers beside the CUDA run:
        its ``modelled`` (always for the task's full size) goes next to the measured figures, so the
        model can be checked against the GPU. Only the model is taken from it; the verdict is the
        GPU's. The side evaluator shares this one's secret, so both draw from the same seed sets."""
        if self.backend != "cuda" or not job.config.model_on_cuda:
            return None
        with self._lock:
            if self._modeller is None:
                self._modeller = Evaluator("interpreter", workers=self.n_workers, isolation=self.isolation,
                                           seed_secret=self._seed_secret, disk_cache=self.disk or False)
        return self._modeller.submit(job.task, job.response, config=job.config.with_(model_on_cuda=False))

    def _result(self, job: _Job, verdict: Verdict, findings: list[str], timings: dict[str, float],
                started: float) -> EvalResult:
        """The one place an ``EvalResult`` is assembled from a verdict."""
        result = EvalResult(
            task_id=job.task.id, backend=self.backend, size=job.size, device=self._device(),
            compiled=verdict.compiled, correct=verdict.correct, hacks=sorted(verdict.hacks),
            hack_details={code: detail for code, detail in sorted(verdict.hacks.items()) if detail},
            findings=[*findings, *verdict.evidence], speedup=verdict.speedup, runtime_ms=verdict.runtime_ms,
            ref_runtime_ms=verdict.ref_runtime_ms, coverage=verdict.coverage, max_abs_error=verdict.max_abs_error,
            mean_abs_error=verdict.mean_abs_error, error=verdict.error, stage=verdict.stage,
            timings={**timings, **verdict.timings}, inputs="secret" if job.config.seed is None else "fixed",
            isolation=self.isolation_used, modelled=verdict.modelled, sol=verdict.sol, dtype=job.config.dtype,
            tolerance=job.config.tol.to_dict())
        result.feedback = feedback(result)
        result.timings["total"] = round(time.perf_counter() - started, 4)
        return result
