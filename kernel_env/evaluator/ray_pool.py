"""``RayEvaluator``: the evaluator's interface over a Ray cluster, one actor per GPU (or CPU slot).

Why: one machine's GPUs bound how fast a trainer can score kernels; with Ray the same
``submit() -> Future[EvalResult]`` reaches every GPU of a cluster, so ``KernelEnv``,
``KernelVectorEnv`` and trainers take it unchanged (``evaluator=RayEvaluator(...)``).

Each actor wraps a local ``Evaluator(workers=1)``: the sandbox lives inside the actor, on the
actor's node and GPU. Around the actors the driver keeps:

- a result cache (the same ``ResultCache`` as ``Evaluator``'s), so repeated (task, code) pairs never
  leave the driver;
- a shared reference cache: the first actor that computes a task's reference publishes it in the
  object store (owned by a small registry actor, so it outlives the actor that made it); the others
  fetch it instead of running the reference again;
- back-pressure: at most ``max_in_flight`` requests per actor; beyond that requests wait in a queue
  of ``max_queued``, and ``submit`` blocks while that queue is full;
- per-request timeouts: a request that has not come back ``request_timeout_s`` after dispatch
  resolves to an ``EvalResult`` whose error says "timed out", and its actor is restarted;
- restarts: actors are created with ``max_restarts``; a request lost with a crashed actor is sent
  again (up to ``retries`` times) to whichever actor is free;
- readiness: work goes only to actors that have answered a ping, so a timeout measures evaluation,
  not an actor's (re)start.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..config import EvalConfig
from ..scoring.result import EvalResult
from .base import BaseEvaluator, default_size, resolve_backend
from .cache import ResultCache, result_key
from .disk_cache import open_trusted_cache
from .plan import new_secret
from .pool import Evaluator
from .submission import SubmissionError, extract_code

NAMESPACE = "kernel_env"
log = logging.getLogger("kernel_env")
TIMED_OUT = "timed out"
#: How long to wait before pinging an actor that answered "unavailable" (Ray is restarting it) again.
UNAVAILABLE_REST_S = 0.5


def _ray():
    try:
        import ray
    except ImportError as exc:  # an optional extra: say how to get it
        raise ImportError("RayEvaluator needs Ray: pip install 'kernel-env[ray]'") from exc
    return ray


# -- actor side -----------------------------------------------------------------------------------

class _ActorEvaluator(Evaluator):
    """The local evaluator inside an actor, with the change a cluster needs.

    ``_compute_reference``: look the reference up in the cluster-wide registry before computing it.
    The key is the content of the reference request, so it covers everything the key in
    ``Evaluator._reference`` covers (task text at its size, seeds, trials, timing, versions) plus the GPU model.
    """

    registry = None
    device_name = "cpu"

    def _reference_key(self, program, alt, plan, config, seeds, work) -> str:
        request = self._reference_request(program, alt, plan, config, seeds, work).to_wire()
        blob = json.dumps([self.device_name, sorted(self._versions.items()), request], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _compute_reference(self, program, alt, plan, config, seeds, work=None):
        if self.registry is None:
            return super()._compute_reference(program, alt, plan, config, seeds, work)
        ray = _ray()
        key = self._reference_key(program, alt, plan, config, seeds, work)
        deadline = time.monotonic() + 2 * config.timeout_s + 30
        while True:
            state, box = ray.get(self.registry.claim.remote(key, 2 * config.timeout_s + 30))
            if state == "ready":
                try:
                    return ray.get(box[0])
                except ray.exceptions.RayError:  # lost with its node: compute it again
                    ray.get(self.registry.drop.remote(key))
                    continue
            if state == "compute" or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # another actor is computing it
        published = False
        try:
            reference = super()._compute_reference(program, alt, plan, config, seeds, work)
            # the registry stores it (and owns the object), so it outlives this actor
            ray.get(self.registry.put.remote(key, reference))
            published = True
        finally:
            if not published:
                self.registry.release.remote(key)
        return reference


class EvalActor:
    """One Ray actor: a local evaluator on this actor's GPU or CPU slot, with ``workers`` sandboxed
    workers (several on a GPU: they check in parallel and time alone, through the evaluator's slot;
    the actor then runs that many requests at once)."""

    def __init__(self, backend: str, config: EvalConfig, isolation: str, registry: str, seed_secret: int,
                 workers: int = 1):
        import torch

        registry = _ray().get_actor(registry, namespace=NAMESPACE)
        self.evaluator = _ActorEvaluator(backend=backend, workers=workers, config=config, isolation=isolation,
                                         seed_secret=seed_secret)
        self.evaluator.registry = registry
        if backend == "cuda" and torch.cuda.is_available():
            self.evaluator.device_name = torch.cuda.get_device_name(0)

    def evaluate(self, task, response: str, size: str, config: EvalConfig) -> dict:
        """The result, and whether the driver may cache it (the local evaluator's rule)."""
        result, cacheable = self.evaluator.outcome(task, response, size, config)
        return {"result": result.to_dict(), "cacheable": cacheable}

    def info(self) -> dict:
        ray = _ray()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "gpus": ray.get_gpu_ids(),
                "worker_pids": self.evaluator.worker_pids(), "device": self.evaluator.device_name}


class ReferenceRegistry:
    """Who holds which reference: key -> [ObjectRef]; a claim stops N actors computing one reference."""

    def __init__(self):
        self.refs: dict[str, list] = {}
        self.claims: dict[str, float] = {}
        self.hits = 0

    def claim(self, key: str, stale_s: float = 600.0):
        if key in self.refs:
            self.hits += 1
            return "ready", self.refs[key]
        if time.monotonic() - self.claims.get(key, -1e18) < stale_s:
            return "pending", None
        self.claims[key] = time.monotonic()
        return "compute", None

    def put(self, key: str, reference) -> None:
        self.refs[key] = [_ray().put(reference)]  # owned by this actor: survives the actor that computed it
        self.claims.pop(key, None)

    def release(self, key: str) -> None:
        self.claims.pop(key, None)

    def drop(self, key: str) -> None:
        self.refs.pop(key, None)

    def stats(self) -> dict:
        return {"references": len(self.refs), "hits": self.hits}


# -- driver side ----------------------------------------------------------------------------------

@dataclass
class _Request:
    task: object
    response: str
    size: str
    config: EvalConfig
    future: Future
    cache_key: tuple | None
    timeout_s: float
    attempts: int = 0
    actor: int = -1
    deadline: float = 0.0
    first_sent: float | None = None  # bounds how long a request may wait for restarting actors


@dataclass
class _Slot:
    handle: object
    in_flight: dict = field(default_factory=dict)  # ObjectRef -> _Request
    failures: int = 0  # requests lost with this actor since its last success
    failing: bool = False
    alive: bool = True
    ping: object = None  # an ``info`` call in flight: the actor gets work once it has answered one
    ready: bool = False
    resting_until: float = 0.0  # an unavailable (restarting) actor is pinged again after this

    def await_ready(self, delay_s: float = 0.0) -> None:
        """Send no work until the actor answers again (it is starting or restarting)."""
        self.ready, self.ping = False, None
        self.resting_until = time.monotonic() + delay_s


class RayEvaluator(BaseEvaluator):
    """``Evaluator``'s interface (``submit``, ``map``, ``evaluate``, ``close``, ``backend``) on Ray actors.

    Args:
        backend: ``"auto"`` (``cuda`` when the cluster has GPUs), ``"cuda"`` or ``"interpreter"``.
        actors: how many actors; default one per GPU of the cluster (cuda) or per CPU (interpreter).
        config: default ``EvalConfig``.
        workers_per_device: sandboxed workers in each CUDA actor, sharing its GPU (default 1): checks
            run in parallel, timing alone. Interpreter actors have one (one CPU each).
        max_in_flight: requests sent to one actor at a time (default: its workers + 1, so one waits
            in its mailbox for the next free worker).
        max_queued: requests waiting on the driver; ``submit`` blocks while this many wait.
        request_timeout_s: from dispatch to result; default ``2 * config.timeout_s + 60`` (the
            reference and the candidate, each bounded in the sandbox, plus an actor's cold start).
        retries: how often a request lost with a crashed actor is sent again.
        max_restarts: Ray restarts of each actor.
        name: share actors and references with other drivers that use the same name (detached,
            named actors in namespace ``kernel_env``); ``close()`` then leaves them running, ``shutdown()`` ends them.
        address: passed to ``ray.init`` when Ray is not initialised yet (``"auto"``, ``"ray://head:10001"``).
        actor_options: extra ``.options()`` for the actors (``runtime_env``, ``resources``, ...).

    Counters: ``restarts`` (actor deaths seen), ``timeouts``, ``results.hits``, ``peak_in_flight``;
    ``stats()`` adds the shared reference cache's size and hits.
    """

    def __init__(self, backend: str = "auto", actors: int | None = None, config: EvalConfig | None = None,
                 isolation: str = "auto", max_in_flight: int | None = None, max_queued: int = 256,
                 request_timeout_s: float | None = None, retries: int = 2, max_restarts: int = 4,
                 cache_size: int = 4096, name: str | None = None, address: str | None = None,
                 actor_options: dict | None = None, workers_per_device: int = 1):
        super().__init__()
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=address, namespace=NAMESPACE if name else None)
        resources = ray.cluster_resources()
        if backend == "auto":
            backend = "cuda" if resources.get("GPU", 0) >= 1 else "interpreter"
        self.backend = resolve_backend(backend)
        self.config = config or EvalConfig()
        if actors is None:
            actors = int(resources.get("GPU" if self.backend == "cuda" else "CPU", 1))
        per_actor_workers = workers_per_device if self.backend == "cuda" else 1
        max_in_flight = per_actor_workers + 1 if max_in_flight is None else max_in_flight
        if actors < 1 or max_in_flight < 1 or per_actor_workers < 1:
            raise ValueError("actors, max_in_flight and workers_per_device must be at least 1")
        self.n_workers = actors
        self.max_in_flight = max_in_flight
        self.request_timeout_s = request_timeout_s
        self.retries = retries
        self.max_restarts = max_restarts
        self.name = name
        named = {"lifetime": "detached", "get_if_exists": True} if name else {}
        registry_name = f"{name}-references" if name else f"references-{uuid.uuid4().hex[:12]}"
        self.registry = ray.remote(ReferenceRegistry).options(
            num_cpus=0, max_restarts=-1, name=registry_name, namespace=NAMESPACE, **named).remote()
        per_actor = {"num_gpus": 1} if self.backend == "cuda" else {"num_cpus": 1}
        actor_class = ray.remote(EvalActor)

        def options(i: int) -> dict:
            # max_task_retries=0: the driver resends lost requests itself, so a timed-out one is never rerun
            where = {"name": f"{name}-{i}", "namespace": NAMESPACE, **named} if name else {}
            return {"max_restarts": max_restarts, "max_task_retries": 0, "max_concurrency": per_actor_workers,
                    **per_actor, **where, **(actor_options or {})}

        # one per evaluator: its actors draw the same seed sets, so they share references; with the disk
        # cache on, this machine's persistent one, so that the actors' stored references serve later drivers
        cache = open_trusted_cache(None, isolation, self.backend)
        secret = cache.secret() if cache is not None else None
        secret = new_secret() if secret is None else secret
        self._slots = [_Slot(actor_class.options(**options(i)).remote(self.backend, self.config, isolation,
                                                                      registry_name, secret, per_actor_workers))
                       for i in range(actors)]
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_queued))
        self._retry: collections.deque = collections.deque()
        self.results = ResultCache(cache_size)
        self._lock = threading.Lock()
        self.restarts = 0
        self.timeouts = 0
        self.peak_in_flight = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kernel-env-ray", daemon=True)
        self._thread.start()

    # -- public API (the same as Evaluator's) -----------------------------------------------------

    def submit(self, task, response: str, size: str | None = None, config: EvalConfig | None = None,
               timeout_s: float | None = None) -> Future:
        """Queue one evaluation; blocks while ``max_queued`` requests are already waiting."""
        self._check_open()
        config = config or self.config
        size = size or default_size(self.backend)
        future: Future = Future()
        key = self._cache_key(task, response, size, config)
        hit = self.results.get(key) if key else None
        if hit is not None:
            future.set_result(hit)
            return future
        timeout = timeout_s or self.request_timeout_s or 2 * config.timeout_s + 60
        self._queue.put(_Request(task, response, size, config, future, key, timeout))
        self._wake.set()
        return future

    def _shutdown(self) -> None:
        """Finish what was submitted, then end the actors (named, shared actors stay up: ``shutdown``)."""
        while self.pending() and self._thread.is_alive():
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=5)
        if not self.name:
            self._kill_all()

    def shutdown(self) -> None:
        """``close`` and end the actors and the registry even when they are named and shared."""
        self.close()
        self._kill_all()

    # -- introspection ----------------------------------------------------------------------------

    @property
    def actors(self) -> list:
        return [s.handle for s in self._slots]

    def pending(self) -> int:
        with self._lock:
            flying = sum(len(s.in_flight) for s in self._slots)
        return flying + self._queue.qsize() + len(self._retry)

    def actor_info(self, timeout_s: float = 60.0) -> list[dict]:
        """Each actor's pid, node, GPUs and workers; waits up to ``timeout_s`` for restarting ones."""
        ray = _ray()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return ray.get([s.handle.info.remote() for s in self._slots],
                               timeout=max(deadline - time.monotonic(), 0.1))
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(UNAVAILABLE_REST_S)

    def worker_pids(self) -> list[int]:
        """Sandbox worker pids of every actor (on their own nodes)."""
        return [pid for info in self.actor_info() for pid in info["worker_pids"]]

    def stats(self) -> dict:
        ray = _ray()
        return {"actors": len(self._slots), "alive": sum(s.alive for s in self._slots), "pending": self.pending(),
                "peak_in_flight": self.peak_in_flight, "restarts": self.restarts, "timeouts": self.timeouts,
                "cache_hits": self.results.hits, **ray.get(self.registry.stats.remote())}

    # -- the dispatcher thread --------------------------------------------------------------------

    def _cache_key(self, task, response, size, config) -> tuple | None:
        try:
            code = extract_code(response)
        except SubmissionError:
            return None
        return result_key(task, code, size, self.backend, config)

    def _loop(self) -> None:
        ray = _ray()
        while not self._stop.is_set():
            try:
                self._check_ready(ray)
                self._dispatch()
                refs = [ref for s in self._slots for ref in s.in_flight]
                if not refs:
                    self._wake.wait(0.05)  # set by submit
                    self._wake.clear()
                    continue
                ready, _ = ray.wait(refs, num_returns=1, timeout=0.01)  # returns at the first result
                if ready:
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # and any others done by now
                for ref in ready:
                    self._collect(ray, ref)
                self._expire(ray)
            except Exception:  # keep serving: a dead dispatcher would leave every future hanging
                log.exception("RayEvaluator dispatcher error")
                time.sleep(0.1)

    def _next(self) -> _Request | None:
        if self._retry:
            return self._retry.popleft()
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _dispatch(self) -> None:
        while True:
            now = time.monotonic()
            live = [s for s in self._slots if s.alive and s.ready and len(s.in_flight) < self.max_in_flight]
            if not live:
                if not any(s.alive for s in self._slots):
                    self._fail_all("every evaluator actor is dead")
                return
            request = self._next()
            if request is None:
                return
            index = self._slots.index(min(live, key=lambda s: len(s.in_flight)))
            slot = self._slots[index]
            request.actor, request.attempts = index, request.attempts + 1
            request.deadline = now + request.timeout_s
            request.first_sent = request.first_sent or now
            ref = slot.handle.evaluate.remote(request.task, request.response, request.size, request.config)
            with self._lock:
                slot.in_flight[ref] = request
                self.peak_in_flight = max(self.peak_in_flight, sum(len(s.in_flight) for s in self._slots))

    def _collect(self, ray, ref) -> None:
        slot = next(s for s in self._slots if ref in s.in_flight)
        with self._lock:
            request = slot.in_flight.pop(ref)
        try:
            payload = ray.get(ref)
            result = EvalResult.from_dict(payload["result"])
        except ray.exceptions.RayActorError as exc:  # the actor crashed or was killed, and Ray restarts it
            if not slot.failing:  # one death fails every request the actor held: count it once
                self.restarts += 1
                slot.failing = True
            slot.await_ready(UNAVAILABLE_REST_S)
            if isinstance(exc, ray.exceptions.ActorUnavailableError):  # restarting now: resend once it is back
                if time.monotonic() - request.first_sent > request.timeout_s:
                    self._resolve(request, self._error(request, f"{TIMED_OUT}: no evaluator actor came back"))
                else:
                    request.attempts -= 1  # not a lost attempt
                    self._retry.append(request)
                return
            slot.failures += 1
            if slot.failures > (self.max_restarts + 1) * self.max_in_flight:  # more than its restarts can explain
                slot.alive = False
            if request.attempts <= self.retries:
                self._retry.append(request)
            else:
                self._resolve(request, self._error(request, f"the evaluator actor died: {type(exc).__name__}"))
            return
        except Exception as exc:  # a bug on the actor side: a value, never an exception in an RL loop
            self._resolve(request, self._error(request, f"the evaluator actor failed: {exc}"))
            return
        slot.failures, slot.failing = 0, False
        if request.cache_key and payload["cacheable"]:
            self.results.put(request.cache_key, result)
        self._resolve(request, result)

    def _expire(self, ray) -> None:
        now = time.monotonic()
        for slot in self._slots:
            late = [(ref, r) for ref, r in list(slot.in_flight.items()) if r.deadline < now]
            if not late:
                continue
            for ref, request in late:
                with self._lock:
                    slot.in_flight.pop(ref, None)
                self.timeouts += 1
                self._resolve(request, self._error(request, f"{TIMED_OUT} after {request.timeout_s:g} s on a Ray actor"))
            # the actor is stuck: restart it; its other requests come back as actor errors and are retried
            ray.kill(slot.handle, no_restart=False)
            slot.await_ready(UNAVAILABLE_REST_S)

    def _check_ready(self, ray) -> None:
        """Ping actors that are starting or restarting; one that answers gets work. So a request's
        timeout measures its evaluation, never an actor's start-up (minutes on a busy machine)."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.ready or not slot.alive or now < slot.resting_until:
                continue
            if slot.ping is None:
                slot.ping = slot.handle.info.remote()
            if not ray.wait([slot.ping], timeout=0)[0]:
                continue
            try:
                ray.get(slot.ping)
                slot.ready, slot.ping = True, None
            except ray.exceptions.RayActorError as exc:  # still restarting, or gone
                if not isinstance(exc, ray.exceptions.ActorUnavailableError):
                    slot.failures += 1
                    slot.alive = slot.failures <= (self.max_restarts + 1) * self.max_in_flight
                slot.await_ready(UNAVAILABLE_REST_S)

    def _error(self, request: _Request, message: str) -> EvalResult:
        return EvalResult.harness_failure(request.task.id, message, backend=self.backend, size=request.size)

    @staticmethod
    def _resolve(request: _Request, result: EvalResult) -> None:
        if not request.future.done():
            request.future.set_result(result)

    def _fail_all(self, message: str) -> None:
        while (request := self._next()) is not None:
            self._resolve(request, self._error(request, message))

    def _kill_all(self) -> None:
        ray = _ray()
        for handle in [s.handle for s in self._slots] + [self.registry]:
            try:
                ray.kill(handle)
            except Exception as exc:  # already gone (or Ray is shutting down): nothing left to end
                log.debug("ray.kill: %s", exc)
