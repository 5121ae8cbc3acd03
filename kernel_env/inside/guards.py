"""In-process watchers for the candidate's process (hacks 10, 11, 22 and 23 of the catalogue).

They run in the same process as the candidate, so they are evidence, not proof of innocence: native
code can defeat them. Each one is cheap enough to run after every call.
"""

from __future__ import annotations

import os
import sys
import threading
import types

import psutil
import torch

#: Modules whose functions, classes and submodules are snapshotted before the candidate is imported:
#: everything the harness relies on to time, compare, serialise and draw inputs.
SNAPSHOT_MODULES = (
    "time", "builtins", "gc", "os", "threading", "json", "math", "psutil", "numpy", "torch", "torch._C",
    "torch.nn.functional", "torch.testing", "torch.cuda", "torch.random", "triton", "triton.testing",
    "triton.runtime.jit", "triton.runtime.interpreter", "triton.runtime.autotuner", "triton.compiler.compiler",
    "triton.compiler.code_generator",
)
#: Classes whose whole attribute dict is snapshotted: methods, dunders, and keys added later (a new
#: ``Tensor.reshape`` would shadow the one inherited from ``TensorBase``).
SNAPSHOT_CLASSES = (
    "torch.Tensor", "torch._C.TensorBase", "torch.nn.Module", "torch.Generator", "torch.cuda.Event",
    "torch.cuda.Stream", "torch._C._CudaEventBase", "torch._C._CudaStreamBase",
    "triton.runtime.jit.JITFunction", "triton.runtime.interpreter.InterpretedFunction",
    "triton.runtime.autotuner.Autotuner", "threading.Thread",
)
#: The harness's own modules: every attribute in them, and every class they define, is snapshotted.
HARNESS_MODULES = ("kernel_env.inside.runner", "kernel_env.inside.launches", "kernel_env.inside.inputs",
                   "kernel_env.inside.timing", "kernel_env.inside.guards", "kernel_env.inside.audit",
                   "kernel_env.inside.gpu_compile", "kernel_env.inside.work", "kernel_env.inside.interpreter_compat",
                   "kernel_env.wire", "kernel_env.protocol")
_MISSING = object()


def _watched_value(value) -> bool:
    """Functions, classes, modules and descriptors: what a patch replaces. Plain data (flags,
    counters, caches) changes legitimately and is not compared outside the harness's own modules."""
    return callable(value) or isinstance(value, (type, types.ModuleType, property, staticmethod, classmethod))


class Integrity:
    """A snapshot of module and class dicts, taken before import. ``verify`` names what changed and
    puts the originals back (and removes added class attributes), so every later stage (timing,
    fingerprints, messages) runs on the code that was there before the candidate."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, object, dict, bool]] = []  # label, owner, its dict as captured, is a class
        self.tampered: set[str] = set()

    def capture(self) -> Integrity:
        for name in SNAPSHOT_MODULES:
            module = sys.modules.get(name)
            if module is not None:
                self._save(name, module, {k: v for k, v in vars(module).items() if _watched_value(v)}, False)
        for dotted in SNAPSHOT_CLASSES:
            cls = _resolve(dotted)
            if isinstance(cls, type):
                self._save(dotted, cls, dict(vars(cls)), True)
        for name in HARNESS_MODULES:
            module = sys.modules.get(name)
            if module is None:
                continue
            self._save(name, module, {k: v for k, v in vars(module).items() if not k.startswith("__")}, False)
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == name:
                    self._save(f"{name}.{value.__qualname__}", value, dict(vars(value)), True)
        return self

    def _save(self, label: str, owner, snapshot: dict, is_class: bool) -> None:
        self.saved.append((label, owner, snapshot, is_class))

    def watch(self, label: str, owner, attr: str) -> None:
        """Watch an attribute installed by the harness itself (the launch recorder's wrappers)."""
        self.saved.append((label, owner, {attr: getattr(owner, attr)}, False))

    def verify(self, _vars=vars, _setattr=setattr, _delattr=delattr) -> set[str]:
        # builtins are bound at definition time: a candidate that replaces them cannot blind this
        found = set()
        for label, owner, snapshot, is_class in self.saved:
            current = _vars(owner)
            for attr, original in snapshot.items():
                if current.get(attr, _MISSING) is not original:
                    found.add(f"{label}.{attr}")
                    try:
                        _setattr(owner, attr, original)
                    except (AttributeError, TypeError):
                        pass
            if is_class and len(current) != len(snapshot):
                for attr in [a for a in current if a not in snapshot]:
                    found.add(f"{label}.{attr} (added)")
                    try:
                        _delattr(owner, attr)
                    except (AttributeError, TypeError):
                        pass
        self.tampered |= found
        return found


def _resolve(dotted: str):
    """The object a dotted name points to, trying the longest importable module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        obj = sys.modules.get(".".join(parts[:cut]))
        if obj is not None:
            for part in parts[cut:]:
                obj = getattr(obj, part, None)
            return obj
    return None


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
