"""What every evaluator offers (the local pool, the Ray pool): one interface, one set of shared rules.

``submit`` is the only method an evaluator must write. The rest is here once: ``map`` and
``evaluate`` on top of it; holding and releasing, so that a pool is closed only by its creator or
by the last of the envs that hold it; sharing instead of copying (Gymnasium deep-copies env kwargs).
"""

from __future__ import annotations

import threading
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
