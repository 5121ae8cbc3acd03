"""What every evaluator offers (the local pool, the Ray pool): one interface, one set of shared rules.

``submit`` is the only method an evaluator must write. The rest is here once: ``map`` and
``evaluate`` on top of it; holding and releasing, so that a pool is closed only by its creator or
by the last of the envs that hold it; sharing instead of copying (Gymnasium deep-copies env kwargs).
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from abc import ABC, abstractmethod
from concurrent.futures import Future

from ..config import EvalConfig
from ..scoring.result import EvalResult

BACKENDS = ("auto", "cuda", "interpreter")


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend != "auto":
        return backend
    import torch

    return "cuda" if torch.cuda.is_available() else "interpreter"


class BackendUnavailable(ValueError):
    """The backend asked for cannot run on this machine (``backend="cuda"`` without a GPU torch can see)."""


def require_local(backend: str) -> str:
    """``backend`` resolved, and usable by workers on this machine: a local pool on ``"cuda"`` without a GPU
    would accept work and then fail every task ("could not run the task's reference"), so it is refused
    here, where the cause is known. (Not for a Ray pool: its workers run on the cluster's nodes, which
    an autoscaler may add once GPU actors are asked for.)"""
    backend = resolve_backend(backend)
    if backend == "cuda":
        import torch

        if not torch.cuda.is_available():
            build = f"torch {torch.__version__} is a CPU build" if torch.version.cuda is None else \
                f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
            raise BackendUnavailable(f"backend='cuda' needs an NVIDIA GPU on this machine, and {build}; "
                                     "use backend='interpreter' (or 'auto', which picks it here)")
    return backend


def default_size(backend: str) -> str:
    return "full" if backend == "cuda" else "small"


class BaseEvaluator(ABC):
    """An evaluator: ``submit(task, response) -> Future[EvalResult]`` plus the shared machinery."""

    backend: str
    config: EvalConfig
    n_workers: int

    def __init__(self) -> None:
        self._holders = 1  # the creator
        self._hold_lock = threading.Lock()
        self.closed = False
        self._handle = next(_HANDLES)
        _LIVE[self._handle] = self

    @abstractmethod
    def submit(self, task, response: str, size: str | None = None, config: EvalConfig | None = None) -> Future:
        """Start one evaluation; the future resolves to an ``EvalResult`` (never to an exception for
        anything the submission did)."""

    @abstractmethod
    def _shutdown(self) -> None:
        """Stop the workers (called once, by ``close``)."""

    def map(self, items, size: str | None = None, config: EvalConfig | None = None) -> list[EvalResult]:
        """Evaluate many (task, response) pairs in parallel; results in input order."""
        futures = [self.submit(task, response, size, config) for task, response in items]
        return [f.result() for f in futures]

    def evaluate(self, task, response: str, size: str | None = None, config: EvalConfig | None = None) -> EvalResult:
        return self.submit(task, response, size, config).result()

    def hold(self) -> BaseEvaluator:
        """Keep this pool open until the matching ``release`` (envs hold the pool they use)."""
        with self._hold_lock:
            self._check_open()
            self._holders += 1
        return self

    def release(self) -> None:
        """Give back a hold (the creator's included); the last one closes the pool."""
        with self._hold_lock:
            self._holders -= 1
            last = self._holders <= 0
        if last:
            self.close()

    def close(self) -> None:
        """End the pool now, whoever else holds it: the creator's call."""
        with self._hold_lock:
            if self.closed:
                return
            self.closed = True
        self._shutdown()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the evaluator is closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __deepcopy__(self, memo):
        return self  # a pool is shared, never copied: Gymnasium deep-copies env kwargs (``evaluator=``)

    def __reduce__(self):
        """Pickled, a pool travels as a handle: unpickled in this process it is the same pool; in another
        (a subprocess, a Ray worker) it is that process's default pool of the same backend."""
        return _reattach, (self.backend, self._handle, os.getpid())


#: pools alive in this process, by a number never reused: what an unpickled handle re-attaches to
_LIVE: weakref.WeakValueDictionary[int, BaseEvaluator] = weakref.WeakValueDictionary()
_HANDLES = itertools.count()


def _reattach(backend: str, key: int, pid: int) -> BaseEvaluator:
    pool = _LIVE.get(key) if pid == os.getpid() else None
    if pool is not None and not pool.closed:
        return pool
    from .shared import default_evaluator

    return default_evaluator(backend)
