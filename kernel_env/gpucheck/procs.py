"""Host-side probes that need neither torch nor a CUDA context: process trees read from /proc, the
CUDA footprint of a process, and nvidia-smi queries.

Why /proc and nvidia-smi: the process that starts the workers must not initialise CUDA itself (a
context costs GPU memory and a driver initialised before a fork is unusable in the child), so what
is known about the GPU from here is read from outside.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time


def parents() -> dict[int, int]:
    """pid -> parent pid of every process this one can see."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and parens
            found[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, found through parent links (new sessions included)."""
    children: dict[int, list[int]] = {}
    for child, parent in parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process, everything below it and its process group, then reap it."""
    for victim in [pid, *descendants(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def worker_pid(root_pid: int, marker: str = "kernel_env.inside.worker") -> int | None:
    """The Python worker under ``root_pid`` (itself, or below a bwrap process whose command line
    names the worker too)."""
    for pid in [root_pid, *descendants(root_pid)]:
        argv = cmdline(pid)
        if marker in argv and argv and not os.path.basename(argv[0]).startswith("bwrap"):
            return pid
    return None


def cuda_footprint(pid: int) -> dict:
    """What shows that a process has initialised CUDA: NVIDIA device files it holds open (cuInit opens
    /dev/nvidiactl, a context /dev/nvidia0 and /dev/nvidia-uvm) and the driver library mapped.
    A library can be mapped by a mere import; open device files come only from the driver's
    initialisation, so they are the verdict and the mapping is the supporting detail."""
    out = {"pid": pid, "readable": True, "nvidia_files": [], "libcuda_mapped": False, "error": None}
    try:
        with open(f"/proc/{pid}/maps") as f:
            out["libcuda_mapped"] = any("libcuda.so" in line for line in f)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/nvidia"):
                out["nvidia_files"].append(target)
    except OSError as exc:
        out.update(readable=False, error=f"{type(exc).__name__}: {exc}")
    out["nvidia_files"] = sorted(set(out["nvidia_files"]))
    out["cuda_initialised"] = bool(out["nvidia_files"]) if out["readable"] else None
    return out


def nvidia_smi(fields: str, what: str = "gpu", timeout_s: float = 30) -> list[dict] | None:
    """Rows of ``nvidia-smi --query-<what>=<fields>``; None without nvidia-smi or on failure."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--query-{what}={fields}", "--format=csv,noheader,nounits"],
                             check=False, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    names = [name.strip() for name in fields.split(",")]
    return [dict(zip(names, (cell.strip() for cell in line.split(",")))) for line in out.stdout.splitlines() if line.strip()]


def gpu_memory_used_mib(python: str, timeout_s: float = 60) -> tuple[float | None, str]:
    """Memory in use on GPU 0 (MiB) and how it was read. nvidia-smi first; else a short subprocess
    with torch.cuda.mem_get_info, whose own context then counts in every reading alike."""
    rows = nvidia_smi("memory.used")
    if rows:
        try:
            return float(rows[0]["memory.used"]), "nvidia-smi"
        except (KeyError, ValueError):
            pass
    code = "import torch; free, total = torch.cuda.mem_get_info(0); print((total - free) / 2**20)"
    try:
        out = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True, timeout=timeout_s)
        return float(out.stdout.strip().splitlines()[-1]), "torch.cuda.mem_get_info in a subprocess"
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None, "unreadable (no nvidia-smi, and the torch subprocess failed)"


def wait_for_line(proc: subprocess.Popen, text: str, timeout_s: float) -> bool:
    """Read ``proc``'s (binary) stdout until a line equal to ``text``: a started probe saying it is
    ready. False when it exits or stays silent past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    fd, seen = proc.stdout.fileno(), b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            return False
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        seen += chunk
        if text.encode() in (line.strip() for line in seen.splitlines()):
            return True
    return False
