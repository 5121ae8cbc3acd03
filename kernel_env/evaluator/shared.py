"""Process-wide pools, one per (backend, worker count), shared by every env that asks for one.

``default_evaluator(backend)`` is the pool ``evaluate()`` and envs without ``evaluator=`` use; it
stays warm until the process exits. ``POOLS.acquire(backend, workers)`` gives envs asking for
``workers=N`` one pool of N workers between them, closed when the last of them releases it. Pools of
different backends live side by side: asking for one never closes another.
"""

from __future__ import annotations

import atexit
import threading

from ..config import EvalConfig
from ..scoring.result import EvalResult
from .base import resolve_backend
from .pool import Evaluator


class PoolRegistry:
    """Pools by (backend, workers). ``workers=None`` is the default pool, which the registry itself
    holds (so it stays warm); a sized pool is held only by its users and closes with the last one."""

    def __init__(self):
        self._pools: dict[tuple[str, int | None], Evaluator] = {}
        self._lock = threading.Lock()

    def default(self, backend: str) -> Evaluator:
        with self._lock:
            return self._open((resolve_backend(backend), None))[0]

    def acquire(self, backend: str, workers: int | None = None) -> Evaluator:
        """A pool the caller holds: call ``release()`` on it when done."""
        with self._lock:
            pool, created = self._open((resolve_backend(backend), workers))
            if created and workers is not None:
                return pool  # the first user takes over the creator's hold
            return pool.hold()

    def _open(self, key: tuple[str, int | None]) -> tuple[Evaluator, bool]:
        pool = self._pools.get(key)
        if pool is not None and not pool.closed:
            return pool, False
        pool = self._pools[key] = Evaluator(backend=key[0], workers=key[1])
        return pool, True

    def close_all(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


POOLS = PoolRegistry()
atexit.register(POOLS.close_all)


def default_evaluator(backend: str = "auto") -> Evaluator:
    """The process-wide pool for ``backend``, created on first use and kept warm until exit."""
    return POOLS.default(backend)


def evaluate(task, response: str, backend: str = "auto", size: str | None = None,
             config: EvalConfig | None = None) -> EvalResult:
    """Evaluate one response for one task on the shared default pool."""
    return default_evaluator(backend).evaluate(task, response, size=size, config=config)
