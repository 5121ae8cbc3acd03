"""In-process watchers for the candidate's process (hacks 10, 11 and 13 of the catalogue).

They run in the same process as the candidate, so they are evidence, not proof of innocence: native
code can defeat them. Each one is cheap enough to run after every call.
"""

from __future__ import annotations

import gc
import inspect
import os
import sys
import threading
import traceback

import psutil
import torch

#: Functions a submission could replace to fake timing, synchronisation, comparisons or the checks
#: themselves; captured before the candidate is imported.
WATCHED = (
    "time.perf_counter", "time.perf_counter_ns", "time.time", "time.monotonic", "time.process_time",
    "torch.allclose", "torch.equal", "torch.isclose", "torch.testing.assert_close", "torch.Tensor.__eq__",
    "torch.Tensor.sum", "torch.Tensor.abs", "torch.Tensor.tolist", "torch.Tensor.to", "torch.Tensor.copy_",
    "torch.Tensor.clone", "torch.Tensor.contiguous", "torch.Tensor.detach", "torch.randint",
    "torch.cuda.synchronize", "torch.cuda.Event", "torch.cuda.Event.record", "torch.cuda.Event.elapsed_time",
    "torch.cuda.Event.synchronize", "torch.cuda.Stream", "torch.cuda.current_stream",
    "triton.testing.do_bench", "threading.enumerate", "os.listdir", "os.getppid", "os.write", "json.dumps",
    "psutil.Process", "builtins.getattr", "builtins.setattr", "builtins.isinstance", "builtins.len",
    "builtins.type", "builtins.print",
)
#: The harness's own modules: every function and class attribute in them is watched too.
HARNESS_MODULES = ("kernel_env.inside.runner", "kernel_env.inside.launches", "kernel_env.inside.inputs",
                   "kernel_env.inside.timing", "kernel_env.inside.guards", "kernel_env.wire", "kernel_env.protocol")


class Integrity:
    """Identities captured before import; ``verify`` names what changed and puts the originals back,
    so every later stage (timing, fingerprints, messages) runs on trusted code again."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, object, str, object]] = []  # label, owner, attribute, original
        self.tampered: set[str] = set()

    def capture(self) -> Integrity:
        for dotted in WATCHED:
            owner, attr = _owner(dotted)
            if owner is not None and hasattr(owner, attr):
                self.saved.append((dotted, owner, attr, getattr(owner, attr)))
        for name in HARNESS_MODULES:
            module = sys.modules.get(name)
            if module is None:
                continue
            for attr, value in list(vars(module).items()):
                if attr.startswith("__"):
                    continue
                self.saved.append((f"{name}.{attr}", module, attr, value))
                if isinstance(value, type) and value.__module__ == name:
                    for cattr, cvalue in list(vars(value).items()):
                        if not cattr.startswith("__"):
                            self.saved.append((f"{name}.{attr}.{cattr}", value, cattr, cvalue))
        return self

    def watch(self, label: str, owner, attr: str) -> None:
        """Watch an attribute installed by the harness itself (launch recorder, spy wrappers)."""
        self.saved.append((label, owner, attr, getattr(owner, attr)))

    def verify(self, _getattr=getattr, _setattr=setattr) -> set[str]:
        # builtins are bound at definition time: a candidate that replaces getattr cannot blind this
        found = set()
        for label, owner, attr, original in self.saved:
            if _getattr(owner, attr, None) is not original:
                found.add(label)
                try:
                    _setattr(owner, attr, original)
                except (AttributeError, TypeError):
                    pass
        self.tampered |= found
        return found


def _owner(dotted: str):
    parts = dotted.split(".")
    obj = sys.modules.get(parts[0])
    for part in parts[1:-1]:
        obj = getattr(obj, part, None)
    return obj, parts[-1]


class HarnessSpy:
    """Records object and frame introspection (gc, sys._getframe, inspect.stack) called from the
    candidate's file: the only reason to call them in a kernel is to look for the harness's data."""

    TARGETS = ((gc, "get_objects"), (gc, "get_referrers"), (gc, "get_referents"), (sys, "_getframe"),
               (sys, "_current_frames"))
    #: Standard-library helpers that introspect on behalf of their caller.
    RELAYS = frozenset(os.path.abspath(m.__file__) for m in (inspect, traceback))

    def __init__(self, own_file: str):
        self.own_file = own_file
        self.calls: set[str] = set()

    def install(self, integrity: Integrity | None = None) -> None:
        for owner, name in self.TARGETS:
            setattr(owner, name, self._wrap(owner, name, getattr(owner, name)))
            if integrity is not None:
                integrity.watch(f"{owner.__name__}.{name}", owner, name)

    def _from_candidate(self, frame) -> bool:
        while frame is not None and os.path.abspath(frame.f_code.co_filename) in self.RELAYS:
            frame = frame.f_back
        return frame is not None and frame.f_code.co_filename == self.own_file

    def _wrap(self, owner, name, original):
        spy = self
        frame_of = sys._getframe
        label = f"{owner.__name__}.{name}"

        if name == "_getframe":
            def wrapper(depth=0):
                if spy._from_candidate(frame_of(1)):
                    spy.calls.add(label)
                return frame_of(depth + 1)
        else:
            def wrapper(*args, **kwargs):
                if spy._from_candidate(frame_of(1)):
                    spy.calls.add(label)
                return original(*args, **kwargs)
        wrapper.__name__ = wrapper.__qualname__ = name
        return wrapper


class Spawned:
    """Threads and processes that outlive a call: Python threads, OS threads (which also shows
    threads started through ``_thread`` or native code) and every other process under our worker."""

    def __init__(self, os_threads: bool):
        self._enumerate = threading.enumerate  # bound now: a replaced threading.enumerate cannot hide threads
        self.python_baseline = {t.ident for t in threading.enumerate()}
        self.os_threads = os_threads
        self.os_baseline = _task_count()
        self.own_namespace = in_own_pid_namespace()

    def threads(self) -> int:
        python = sum(1 for t in self._enumerate() if t.ident not in self.python_baseline and t.is_alive())
        native = max(0, _task_count() - self.os_baseline) if self.os_threads else 0
        return max(python, native)

    def processes(self) -> int:
        """Live processes other than us and our parent (the worker): in bubblewrap's pid namespace that
        is every process the candidate started, double forks and new sessions included. Read straight
        from /proc (no psutil walk that can skip a process racing with it)."""
        me, parent = os.getpid(), os.getppid()
        alive = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in (1, me, parent):
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            state, ppid = fields[0], int(fields[1])
            if state != b"Z" and (self.own_namespace or ppid == me or _descends(int(entry), parent)):
                alive += 1
        return alive


def _descends(pid: int, ancestor: int) -> bool:
    """Without a pid namespace: is ``pid`` under ``ancestor`` (the worker adopts orphans)?"""
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def in_own_pid_namespace() -> bool:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0]) == b"bwrap"
    except OSError:
        return False


def _task_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def foreign_storage(value, known: set[int]) -> bool:
    """True for a CPU tensor whose memory torch did not allocate for it (shared memory, a numpy
    array, a mapped buffer): something outside the call can fill it later. ``known`` holds storages
    the harness itself handed to numpy (which also makes a storage non-resizable)."""
    if type(value) is not torch.Tensor or value.device.type != "cpu":
        return False
    storage = value.untyped_storage()
    return storage.is_shared() or (not storage.resizable() and storage.data_ptr() not in known)
