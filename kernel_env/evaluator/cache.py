"""The result cache both evaluators keep: (task, code, size, backend, config) -> a finished result."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from ..config import EvalConfig
from ..scoring.result import EvalResult


def result_key(task, code: str, size: str, backend: str, config: EvalConfig) -> tuple:
    """What a whole result depends on: the task's text, the candidate's code, where and how it ran."""
    return (task.hash, size, hashlib.sha256(code.encode()).hexdigest(), backend, config.digest)


class ResultCache:
    """A bounded LRU of results. Callers may mutate what they get, so it stores and hands out copies."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.hits = 0
        self._entries: OrderedDict[tuple, EvalResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, started: float | None = None) -> EvalResult | None:
        """A copy of the cached result stamped as a cache hit (``started``: when the request came in)."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        hit = cached.copy()
        total = time.perf_counter() - started if started is not None else 0.0
        hit.timings = {"total": round(total, 6), "cache_hit": 1.0}
        return hit

    def put(self, key: tuple, result: EvalResult) -> None:
        with self._lock:
            self._entries[key] = result.copy()
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
