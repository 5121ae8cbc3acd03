"""Pipelined evaluation on one device: many runs compile and check at once, one run at a time measures.

Why: a GPU sits idle while a candidate imports and Triton compiles (CPU-bound, often seconds), so
one worker per GPU wastes most of it; but two runs timing at once, or one timing while another
launches kernels, measure each other. So each device has one ``DeviceSlot``, a readers-writer lock:
a run takes it *exclusive* while its timer calibrates (a few empty calls), *shared* for import,
compile and correctness checks (any number of runs at once), and *exclusive* again from its timing
stage to its end (timing, profiling and the checks after them), when no other run on that device is
doing anything (``protocol.SLOT_ORDER``). The worker stops a run's processes (SIGSTOP) while it
waits, so a candidate's background threads cannot work while another run measures.

Waiting writers go first: a new run does not start its checks while a timed run is queued, so timing
is never starved by a stream of new evaluations (back-pressure on the checks instead).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ..protocol import SLOT_ORDER

SHARED, EXCLUSIVE = "shared", "exclusive"


class DeviceSlot:
    """One device's measurement slot (a writer-preferring readers-writer lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._queued_exclusive = 0
        self.waited_s = 0.0  # total time runs spent waiting for this slot
        self.exclusive_runs = 0
        self._since: dict[int, float] = {}  # thread -> when its current hold began
        self.history: deque = deque(maxlen=4096)  # (mode, held from, held until), monotonic seconds

    def acquire(self, mode: str) -> float:
        """Block until the slot is held in ``mode``; return the seconds waited."""
        start = time.monotonic()
        with self._cond:
            if mode == SHARED:
                self._cond.wait_for(lambda: not self._exclusive and not self._queued_exclusive)
                self._shared += 1
            elif mode == EXCLUSIVE:
                self._queued_exclusive += 1
                try:
                    self._cond.wait_for(lambda: not self._exclusive and not self._shared)
                finally:
                    self._queued_exclusive -= 1
                self._exclusive = True
                self.exclusive_runs += 1
            else:
                raise ValueError(f"slot mode must be {SHARED!r} or {EXCLUSIVE!r}, not {mode!r}")
            now = time.monotonic()
            self._since[threading.get_ident()] = now
            self.waited_s += now - start
            return now - start

    def release(self, mode: str) -> None:
        with self._cond:
            since = self._since.pop(threading.get_ident(), None)
            if since is not None:
                self.history.append((mode, since, time.monotonic()))
            if mode == SHARED:
                if self._shared <= 0:
                    raise RuntimeError("released a shared hold that was not taken")
                self._shared -= 1
            elif self._exclusive:
                self._exclusive = False
            else:
                raise RuntimeError("released an exclusive hold that was not taken")
            self._cond.notify_all()


class Hold:
    """What one run holds of its device's slot, step by step in ``SLOT_ORDER``, released at its end.
    A run that asks for anything else is refused (``ValueError``)."""

    def __init__(self, slot: DeviceSlot) -> None:
        self.slot = slot
        self.mode: str | None = None
        self.steps = 0
        self.waited_s = 0.0

    def take(self, mode: str) -> None:
        if self.steps >= len(SLOT_ORDER) or mode != SLOT_ORDER[self.steps]:
            raise ValueError(f"a run asked for the {mode} slot at step {self.steps + 1} of {SLOT_ORDER}")
        self.release()  # give the current hold back first: two runs moving on cannot deadlock
        self.waited_s += self.slot.acquire(mode)
        self.mode = mode
        self.steps += 1

    def release(self) -> None:
        if self.mode is not None:
            self.slot.release(self.mode)
            self.mode = None


def default_workers_per_device(devices: int, cores: int) -> int:
    """Enough runs per GPU to keep it busy while others compile, without more CUDA contexts (each
    about half a GB of device memory) or more CPU-bound compiles than the cores can carry."""
    return max(1, min(4, cores // max(1, devices)))
