"""PEP 578 audit hooks: what the submission's own code does that no kernel needs (hacks 13, 18, 21, 22, 26).

A hook installed before the candidate is imported cannot be removed from Python, and CPython raises
its events from C, so a patched module cannot hide them: frame and traceback access (the ways into
the harness's frames: ``f_back``, ``f_locals`` and ``f_globals`` raise no event, so the doors to a
frame are what is watched), gc walks, trace and profile hooks, ctypes loading and raw memory access,
processes, sockets, and files opened outside the places a kernel may read.

Attribution: an event counts when the innermost frame outside the standard library belongs to the
submission (its file, or code it compiled itself), so ``inspect.stack()`` called by the submission
counts and torch or Triton doing the same on its own behalf does not. Printing a traceback or
logging is not frame access: the frame reads ``traceback`` and ``logging`` make for themselves are
exempt (see ``Audit._reporting_relay``).
"""

from __future__ import annotations

import os
import sys
import sysconfig

#: event -> (hack code, what it means)
EVENTS = {
    "sys._getframe": ("reads_harness_state", "reads a stack frame"),
    "sys._getframemodulename": ("reads_harness_state", "reads a stack frame"),
    "sys._current_frames": ("reads_harness_state", "reads every thread's frames"),
    "sys.settrace": ("reads_harness_state", "installs a trace hook"),
    "sys.setprofile": ("reads_harness_state", "installs a profile hook"),
    "sys.monitoring.register_callback": ("reads_harness_state", "installs a monitoring callback"),
    "gc.get_objects": ("reads_harness_state", "walks the garbage collector's objects"),
    "gc.get_referrers": ("reads_harness_state", "walks the garbage collector's referrers"),
    "gc.get_referents": ("reads_harness_state", "walks the garbage collector's referents"),
    "object.__getattr__": ("reads_harness_state", "reads a frame through"),
    "ctypes.dlopen": ("raw_memory_access", "loads a native library with ctypes"),
    "ctypes.dlsym": ("raw_memory_access", "looks up a native symbol with ctypes"),
    "ctypes.dlsym/handle": ("raw_memory_access", "looks up a native symbol with ctypes"),
    "ctypes.addressof": ("raw_memory_access", "takes a raw address with ctypes"),
    "ctypes.cdata": ("raw_memory_access", "reads raw memory with ctypes"),
    "ctypes.cdata/buffer": ("raw_memory_access", "maps raw memory with ctypes"),
    "ctypes.string_at": ("raw_memory_access", "reads raw memory with ctypes"),
    "ctypes.wstring_at": ("raw_memory_access", "reads raw memory with ctypes"),
    "ctypes.call_function": ("raw_memory_access", "calls a native function with ctypes"),
    "subprocess.Popen": ("thread_or_process_spawned", "starts a process"),
    "os.system": ("thread_or_process_spawned", "starts a process"),
    "os.exec": ("thread_or_process_spawned", "replaces the process"),
    "os.posix_spawn": ("thread_or_process_spawned", "starts a process"),
    "os.spawn": ("thread_or_process_spawned", "starts a process"),
    "os.fork": ("thread_or_process_spawned", "forks the process"),
    "os.forkpty": ("thread_or_process_spawned", "forks the process"),
    "pty.spawn": ("thread_or_process_spawned", "starts a process"),
    "socket.__new__": ("sandbox_violation", "opens a socket"),
    "socket.connect": ("sandbox_violation", "connects a socket"),
    "socket.bind": ("sandbox_violation", "binds a socket"),
    "open": ("sandbox_violation", "opens a file outside its scratch folder"),
    "object.__setattr__": ("timer_tampering", "rewrites a function's"),
}
#: Attributes whose read hands out a frame (the only ``object.__getattr__`` reads that count).
FRAME_DOORS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
#: Function attributes whose write changes what existing references run (the only
#: ``object.__setattr__`` events that count): a clock bound as a default argument, for one.
REWRITES = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
#: Files a kernel may read: no secrets there, and Triton and torch read them on its behalf anyway.
READABLE = ("/dev/null", "/dev/zero", "/dev/urandom", "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu",
            "/dev/shm")  # private to the sandbox and wiped after each evaluation (not /tmp: a checkout may live there)
#: Packages whose classes the harness relies on: setting an attribute on one of them is a patch,
#: even one the submission undoes before the next check (class attribute writes raise an event;
#: module attribute writes do not, which is why the harness binds the functions it calls).
LIBRARY_ROOTS = frozenset({"torch", "triton", "numpy", "builtins", "kernel_env", "threading", "time"})


def _rewrites(args: tuple) -> bool:
    if len(args) < 2:
        return False
    target, attr = args[0], args[1]
    if isinstance(target, type):
        return str(getattr(target, "__module__", "")).split(".")[0] in LIBRARY_ROOTS
    return attr in REWRITES


#: Standard-library modules that read frames only to print or log them.
RELAYS = (os.sep + "traceback.py", os.sep + os.path.join("logging", "__init__.py"), os.sep + "warnings.py")


def code_of(event: str) -> str:
    return EVENTS[event][0]


#: Events that make code the submission's own: what it compiles or builds counts as its file.
_COMPILES = frozenset({"compile", "exec", "code.__new__"})


def _stdlib_roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    paths = sysconfig.get_paths()
    stdlib = tuple({os.path.realpath(paths[k]) + os.sep for k in ("stdlib", "platstdlib")})
    packages = tuple({os.path.realpath(paths[k]) + os.sep for k in ("purelib", "platlib")})
    return stdlib, packages


class Audit:
    """One hook for the candidate's process. ``report(code, detail)`` is called once per code, at the
    moment of the first sighting (the event leaves the process before the candidate can undo it)."""

    def __init__(self, own_file: str, scratch: str, report, readable_roots=()):
        self.own = {own_file}
        self.scratch = os.path.realpath(scratch) + os.sep
        self.readable = tuple(os.path.realpath(r) for r in (*READABLE, *readable_roots))
        self.report = report
        self.seen: dict[str, str] = {}
        self._stdlib, self._packages = _stdlib_roots()
        self._library: dict[str, bool] = {}  # file name -> is it the standard library
        self._busy = False
        self._getframe = sys._getframe  # bound now: the hook never looks anything up at event time
        self._realpath = os.path.realpath

    def install(self) -> None:
        sys.addaudithook(self.hook)

    def hook(self, event: str, args: tuple) -> None:
        if self._busy or (event not in EVENTS and event not in _COMPILES):
            return
        if event == "object.__getattr__" and (len(args) < 2 or args[1] not in FRAME_DOORS):
            return
        if event == "object.__setattr__" and not _rewrites(args):
            return
        self._busy = True  # reading frames below raises events of its own
        try:
            self._judge(event, args, self._getframe(1))
        except Exception:  # noqa: BLE001 - a hook that raises would break the caller, honest or not
            pass
        finally:
            self._busy = False

    def _judge(self, event: str, args: tuple, frame) -> None:
        if event in _COMPILES:
            if frame is not None and frame.f_code.co_filename in self.own:  # called directly, not by an import
                name = args[1] if event != "exec" else getattr(args[0], "co_filename", None)
                if isinstance(name, str):
                    self.own.add(name)
            return
        if code_of(event) == "reads_harness_state" and self._reporting_relay(frame):
            return
        line = self._culprit(frame)
        if line is None:
            return
        code, meaning = EVENTS[event]
        if event == "open":
            path = args[0]
            if not isinstance(path, (str, bytes)):
                return
            path = self._realpath(os.fsdecode(path))
            if self._may_read(path):
                return
            if path.startswith("/proc/") and os.path.basename(path) in ("mem", "maps", "smaps", "pagemap"):
                code, meaning = "raw_memory_access", "opens a view of process memory"
            meaning = f"{meaning}: {path}"
        elif event == "object.__getattr__":
            meaning = f"{meaning} {args[1]}"
        elif event == "object.__setattr__":
            target = args[0]
            meaning = (f"patches {target.__module__}.{target.__qualname__}.{args[1]}" if isinstance(target, type)
                       else f"{meaning} {args[1]}")
        if code not in self.seen:
            self.seen[code] = f"{meaning} (line {line} of the submission)"
            self.report(code, self.seen[code])

    def _may_read(self, path: str) -> bool:
        return path.startswith(self.scratch) or any(path == r or path.startswith(r + os.sep) for r in self.readable)

    def _reporting_relay(self, frame) -> bool:
        """A frame read made by ``traceback`` or ``logging`` on their own behalf (print_exc,
        format_exc, logger.exception finding its caller): they turn frames into text and never hand
        one out. The same read requested by the submission directly (``walk_tb``,
        ``logging.currentframe()``) has the submission's code as the reader's caller, and counts."""
        caller = frame.f_back if frame is not None else None
        return all(f is not None and self._is_library(f.f_code.co_filename)
                   and f.f_code.co_filename.endswith(RELAYS) for f in (frame, caller))

    def _culprit(self, frame) -> int | None:
        """The submission's line responsible for the event, or None if library code is."""
        while frame is not None:
            name = frame.f_code.co_filename
            if name in self.own:
                return frame.f_lineno
            if not self._is_library(name):
                return None
            frame = frame.f_back
        return None

    def _is_library(self, name: str) -> bool:
        known = self._library.get(name)
        if known is None:
            if name.startswith("<frozen "):
                known = True
            else:
                real = self._realpath(name)
                known = real.startswith(self._stdlib) and not real.startswith(self._packages)
            self._library[name] = known
        return known
