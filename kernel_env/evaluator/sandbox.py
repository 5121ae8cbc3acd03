"""Start and talk to one sandboxed worker process (the trusted side of :mod:`kernel_env.inside.worker`).

With bubblewrap the worker sees only what it needs, read-only (system libraries, the Python
installation and its packages, the harness's own package: see ``visible_paths``), a private /tmp,
no network, its own pid namespace and no capabilities, and dies with its parent. Without it, the worker is a plain
subprocess with rlimits and a loud warning: file-system and network isolation are then absent.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import wire
from ..protocol import GRANT, SHUTDOWN, Event, RunRequest

log = logging.getLogger("kernel_env")
READY_TIMEOUT_S = 180.0


class WorkerDied(RuntimeError):
    """The worker process exited or stopped answering; it must be replaced."""


class RequestRefused(RuntimeError):
    """The worker could not read a request: a bug on the trusted side, never the candidate's doing."""


#: System folders the candidate's Python needs: programs, shared libraries (on CUDA also the C
#: compiler and headers Triton builds its launchers with). Symbolic links are recreated as links.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Files under /etc the dynamic loader and user lookups read; nothing secret (no /etc/shadow).
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/passwd", "/etc/group",
             "/etc/nsswitch.conf", "/etc/localtime")


def visible_paths() -> list[str]:
    """What the sandbox shows besides the system folders, read-only: the Python installation, its
    package folders and the harness's own package. Not the rest of a checkout (task sources,
    shipped answers, tests), not the working directory, not $HOME, not the trusted caches."""
    import torch
    import triton

    harness = Path(__file__).resolve().parents[1]  # kernel_env/
    packages = {Path(m.__file__).resolve().parents[1] for m in (torch, triton)}
    candidates = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent), str(harness), *map(str, packages)}
    found = sorted({str(Path(p).resolve()) for p in candidates if p and Path(p).is_dir()})
    return [p for p in found if not any(p != q and p.startswith(q + "/") for q in found)]


def bwrap_command(backend: str) -> list[str]:
    cmd = ["bwrap"]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for path in ETC_FILES:
        if os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    cmd += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in visible_paths():  # after the private /tmp, so a Python installed under /tmp shows too
        cmd += ["--ro-bind", path, path]
    if backend == "cuda":  # before the remount: bwrap creates the mount points in the root it builds
        cmd += ["--ro-bind", "/sys", "/sys"]  # the driver reads PCI topology there
        for dev in sorted(glob.glob("/dev/nvidia*")):
            cmd += ["--dev-bind", dev, dev]
    cmd += ["--remount-ro", "/"]  # the tmpfs that holds these mounts: nothing written there outlives a run
    cmd += [
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--new-session",
        "--die-with-parent", "--cap-drop", "ALL", "--chdir", "/tmp",
    ]
    return cmd


#: Environment variables the worker inherits: what finds programs, libraries, the GPU and Python.
#: Everything else (tokens, keys, the user's settings) stays with the trusted process.
INHERITED_ENV = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "LC_CTYPE")
INHERITED_PREFIXES = ("CUDA_", "NVIDIA_", "TRITON_", "OMP_", "MKL_")


def worker_environment(backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV or k.startswith(INHERITED_PREFIXES)}
    env["HOME"] = "/tmp"  # never the user's: caches and credentials live there
    if backend == "cuda":  # the worker sets it for the interpreter; one inherited here (a test run's) would
        env.pop("TRITON_INTERPRET", None)  # make every CUDA kernel run interpreted on the CPU
    return env


@functools.cache
def bwrap_works(backend: str = "interpreter") -> bool:
    """bubblewrap can be installed yet unusable (no user namespaces, or a GPU's mounts refused): try
    the backend's own command once per process."""
    if shutil.which("bwrap") is None:
        return False
    probe = bwrap_command(backend) + ["--", "/bin/true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class SandboxProcess:
    """One warm worker. ``request`` sends a job and yields its events until the ``exit`` event."""

    def __init__(self, backend: str, isolation: str = "auto", env: dict | None = None):
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be auto, bwrap or none, not {isolation!r}")
        use_bwrap = isolation == "bwrap" or (isolation == "auto" and bwrap_works(backend))
        if isolation == "bwrap" and not bwrap_works(backend):
            raise RuntimeError("isolation='bwrap' but bubblewrap is missing or unusable (apt-get install bubblewrap)")
        self.backend = backend
        self.sandboxed = use_bwrap
        self._own_scratch = None if use_bwrap else tempfile.mkdtemp(prefix="kernel-env-")
        scratch = "/tmp" if use_bwrap else self._own_scratch
        cmd = [sys.executable, "-m", "kernel_env.inside.worker", "--backend", backend, "--scratch", scratch]
        if use_bwrap:
            cmd = bwrap_command(backend) + ["--"] + cmd
        else:
            log.warning(
                "bubblewrap unavailable: candidate code runs WITHOUT file-system or network isolation "
                "(rlimits and process cleanup still apply). Install it: apt-get install bubblewrap"
            )
        full_env = {**worker_environment(backend), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=full_env)
        self._requests = 0
        try:
            self.ready = self._read(time.monotonic() + READY_TIMEOUT_S)[0]
            if self.ready.get("event") != Event.READY:
                raise WorkerDied(f"worker sent {self.ready!r} instead of ready")
        except BaseException:
            self.close()
            raise
        self.versions = self.ready.get("versions", {})

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self, deadline: float):
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise WorkerDied("worker did not answer in time")
        try:
            return wire.recv(fd)
        except (EOFError, wire.WireError) as exc:
            raise WorkerDied(f"worker channel broke: {exc}") from exc

    def request(self, request: RunRequest, timeout_s: float, hold=None):
        """Yield (event, blobs) until the worker's ``exit`` event; raises WorkerDied on silence or on a
        frame of another request (the worker must then be replaced: its stream cannot be trusted).
        With ``hold`` (a ``scheduler.Hold``), the run's slot requests are answered here: taken, then
        granted; released when the run ends, however it ends."""
        self._requests += 1
        header = {**request.to_wire(), "id": self._requests}
        try:
            wire.send(self.proc.stdin.fileno(), header)
        except OSError as exc:
            raise WorkerDied(f"worker is gone: {exc}") from exc
        deadline = time.monotonic() + timeout_s + 30.0  # the worker enforces timeout_s itself
        try:
            while True:
                event, blobs = self._read(deadline)
                if event.get("id") != header["id"]:
                    raise WorkerDied(f"frame for request {event.get('id')!r} during request {header['id']}")
                if event.get("event") == Event.EXIT and event.get("refused"):  # only the worker sends an exit
                    raise RequestRefused(f"the sandboxed worker refused the request (a bug in kernel-env): "
                                         f"{event['refused']}")
                if event.get("event") == Event.SLOT:
                    deadline += self._grant(hold, event.get("mode"))
                    continue
                yield event, blobs
                if event.get("event") == Event.EXIT:
                    return
        finally:
            if hold is not None:
                hold.release()

    def _grant(self, hold, mode) -> float:
        """Take the slot the run asked for, then let it go on; the seconds waited (not the run's)."""
        if hold is None:
            raise WorkerDied("the run asked for a device slot it was not given")
        start = time.monotonic()
        try:
            hold.take(mode)
        except ValueError as exc:  # the worker checks the order: a second ask means its stream is forged
            raise WorkerDied(str(exc)) from exc
        try:
            wire.send(self.proc.stdin.fileno(), {"kind": GRANT, "mode": mode})
        except OSError as exc:
            raise WorkerDied(f"worker is gone: {exc}") from exc
        return time.monotonic() - start

    def close(self) -> None:
        if self.alive:
            try:
                wire.send(self.proc.stdin.fileno(), {"kind": SHUTDOWN})
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.alive:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self._own_scratch:
            shutil.rmtree(self._own_scratch, ignore_errors=True)
