"""The sandboxed worker: a warm process that forks one child per evaluation.

Started by :mod:`kernel_env.evaluator.sandbox` (inside bubblewrap when available) as
``python -m kernel_env.inside.worker --backend B``. It imports torch and Triton once, then for each
request forks a child that runs :func:`kernel_env.inside.runner.run_request` under resource limits. The
worker relays the child's messages to the trusted side with its own timestamps (the host clock the
candidate cannot touch), watches memory, process count and the deadline, and afterwards kills
everything the child left behind and wipes its scratch space.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import select
import shutil
import signal
import sys
import time

from .. import wire
from ..config import library_versions
from ..protocol import (
    CHILD_EVENTS,
    GRANT,
    SHUTDOWN,
    SLOT_ORDER,
    Event,
    Killed,
    ProtocolError,
    RunRequest,
    request_from_wire,
)
from .guards import in_own_pid_namespace

_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 1, 4, 36
POLL_S = 0.02


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the limits below still apply
        pass


class Worker:
    def __init__(self, backend: str, scratch_root: str, sandboxed: bool):
        self.backend = backend
        self.scratch_root = scratch_root
        self.sandboxed = sandboxed
        self.proto_in = os.dup(0)
        self.proto_out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # stray prints from libraries must not corrupt the protocol
        self.counter = 0
        # what the private /tmp and /dev/shm hold before any evaluation (e.g. re-bound venv paths)
        self.baseline = {r: set(os.listdir(r)) for r in (scratch_root, "/dev/shm") if sandboxed and os.path.isdir(r)}

    def send(self, header: dict, blobs=()) -> None:
        wire.send(self.proto_out, header, list(blobs))

    def serve(self) -> None:
        self.send({"event": Event.READY, "pid": os.getpid(), "sandboxed": self.sandboxed,
                   "versions": library_versions()})
        while True:
            try:
                header, _ = wire.recv(self.proto_in)
            except EOFError:
                return
            if header.get("kind") == SHUTDOWN:
                return
            if header.get("kind") == GRANT:  # for a run that ended while it waited: nothing to do
                continue
            try:
                request = request_from_wire(header)
            except ProtocolError as exc:  # only the trusted side writes here: a bug there, said so
                self.send({"event": Event.EXIT, "id": header.get("id"), "refused": str(exc)})
                continue
            self.handle(request, header.get("id"))

    def handle(self, request: RunRequest, request_id) -> None:
        self.counter += 1
        scratch = os.path.join(self.scratch_root, f"eval-{self.counter}")
        os.makedirs(scratch, exist_ok=True)
        read_fd, write_fd = os.pipe()
        go_read, go_write = os.pipe()  # one byte per slot granted: the child waits on it
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            os.close(go_write)
            _child(request, write_fd, scratch, self, go_read)
        os.close(write_fd)
        os.close(go_read)
        started = time.monotonic()
        self.slot = _SlotWait(pid, go_write, request.slots)
        outcome = self.supervise(pid, read_fd, request, request_id, started)
        os.close(read_fd)
        os.close(go_write)
        self.clean_up(scratch)
        log_tail = outcome.pop("log_tail", "")
        self.send({"event": Event.EXIT, "id": request_id, "elapsed": time.monotonic() - started,
                   "log_tail": log_tail, **outcome})

    def supervise(self, pid: int, fd: int, request: RunRequest, request_id, started: float) -> dict:
        import psutil

        limits = request.limits
        deadline = started + limits.timeout_s
        reader = wire.FrameBuffer(limit=limits.max_result_mb << 20)
        os.set_blocking(fd, False)
        me = psutil.Process()
        status, killed_for, eof = None, None, False
        next_check = 0.0
        while status is None:
            now = time.monotonic()
            if now > deadline + self.slot.paused_s(now):  # time stopped in a slot's queue is not the run's
                killed_for = Killed.TIMEOUT
                break
            if not eof:
                watched = [fd, self.proto_in] if self.slot.waiting else [fd]
                ready, _, _ = select.select(watched, [], [], POLL_S)
                if self.proto_in in ready:
                    self.slot.granted(self.read_grant())
                if fd in ready:
                    eof, killed_for = self.relay(fd, reader, started, request_id)
                    if killed_for:
                        break
            else:
                time.sleep(POLL_S)
            if now >= next_check:  # psutil walks /proc: every 50 ms is plenty
                next_check = now + 0.05
                tree = _descendants(me)
                if len(tree) > limits.max_processes:
                    killed_for = Killed.PROCESSES
                    break
                rss = sum(_rss(p) for p in tree)
                if rss > limits.memory_mb << 20:
                    killed_for = Killed.MEMORY
                    break
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
        while killed_for is None and not eof:  # drain what the child wrote before it exited
            eof, killed_for = self.relay(fd, reader, started, request_id)
            if not eof and not select.select([fd], [], [], 0)[0]:
                break
        self.kill_all(me)
        if status is None:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = 0
        outcome = {"killed_for": killed_for, "log_tail": _tail(os.path.join(self.scratch_root, f"eval-{self.counter}", "output.log"))}
        if os.WIFSIGNALED(status):
            outcome["signal"] = signal.Signals(os.WTERMSIG(status)).name
        else:
            outcome["exit_code"] = os.WEXITSTATUS(status)
        return outcome

    def relay(self, fd: int, reader, started: float, request_id) -> tuple[bool, str | None]:
        """Forward complete frames, stamped with our clock and the request's id. Returns (end of
        stream, kill reason): too many bytes or a frame no child may send."""
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return False, None
        if not chunk:
            return True, None
        try:
            reader.feed(chunk)
            for header, blobs in reader.frames():
                if header.get("event") not in CHILD_EVENTS:
                    return False, Killed.PROTOCOL
                if header["event"] == Event.SLOT and not self.slot.wanted(header.get("mode")):
                    return False, Killed.PROTOCOL
                header.update(t=time.monotonic() - started, id=request_id)
                self.send(header, blobs)
        except wire.ResultLimitExceeded:
            return False, Killed.RESULT
        except wire.WireError:
            return False, Killed.PROTOCOL
        return False, None

    def read_grant(self) -> dict:
        """The trusted side's answer to a slot request (it sends nothing else during a request)."""
        header, _ = wire.recv(self.proto_in)
        if header.get("kind") != GRANT:
            raise ProtocolError(f"expected a slot grant during a request, got {header.get('kind')!r}")
        return header

    def kill_all(self, me) -> None:
        """Kill every process the child left, including ones that started new sessions."""
        for _ in range(50):
            if self.sandboxed:
                try:
                    os.kill(-1, signal.SIGKILL)  # own pid namespace: everyone but us and init
                except ProcessLookupError:
                    pass
            for p in _descendants(me):
                try:
                    p.kill()
                except Exception:
                    pass
            _reap()
            if not _descendants(me):
                return
            time.sleep(0.01)

    def clean_up(self, scratch: str) -> None:
        """Remove the scratch dir and, in the sandbox, anything else the child left in the private
        /tmp or /dev/shm: nothing written by one evaluation may be read by the next."""
        shutil.rmtree(scratch, ignore_errors=True)
        for root, keep in self.baseline.items():
            for entry in set(os.listdir(root)) - keep:
                path = os.path.join(root, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass


class _SlotWait:
    """One run's slot requests, as the worker sees them: the harness asks in ``SLOT_ORDER``; anything
    else is a forged frame. While a request waits, the run's process group is stopped: nothing of a
    candidate (its threads included) runs while another run on the device measures."""

    def __init__(self, pid: int, go_fd: int, allowed: bool):
        self.pid, self.go_fd, self.allowed = pid, go_fd, allowed
        self.asked = 0
        self.waiting_since: float | None = None
        self.waited_s = 0.0

    @property
    def waiting(self) -> bool:
        return self.waiting_since is not None

    def paused_s(self, now: float) -> float:
        """Seconds the run has spent stopped in the slot's queue, the current wait included."""
        return self.waited_s + (now - self.waiting_since if self.waiting else 0.0)

    def wanted(self, mode) -> bool:
        if not self.allowed or self.waiting or self.asked >= len(SLOT_ORDER) or mode != SLOT_ORDER[self.asked]:
            return False
        self.asked += 1
        _signal_group(self.pid, signal.SIGSTOP)
        self.waiting_since = time.monotonic()
        return True

    def granted(self, grant: dict) -> None:
        if not self.waiting:
            raise ProtocolError("a slot grant arrived while no run was waiting for one")
        self.waited_s += time.monotonic() - self.waiting_since
        self.waiting_since = None
        try:
            os.write(self.go_fd, b"g")
        except OSError:  # the run is gone (killed while it waited): its exit is reported as usual
            pass
        _signal_group(self.pid, signal.SIGCONT)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(me) -> list:
    import psutil

    try:
        return [p for p in me.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def _rss(proc) -> int:
    """Proportional set size: forked children share the warm parent's pages, so RSS over-counts."""
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError):
        pass
    try:
        return proc.memory_info().rss
    except Exception:
        return 0


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _child(request: RunRequest, fd: int, scratch: str, worker: Worker, go_fd: int) -> None:
    """Set up the candidate's process: limits, scratch dir, output capture; then run and exit."""
    code = 0
    try:
        os.close(worker.proto_in)
        os.close(worker.proto_out)
        os.setpgid(0, 0)
        os.chdir(scratch)
        log = os.open(os.path.join(scratch, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.update(HOME=scratch, TMPDIR=scratch, TRITON_CACHE_DIR=os.path.join(scratch, ".triton"))
        limits = request.limits
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_time_s, limits.cpu_time_s + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_output_mb << 20,) * 2)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; a flood must end the process
        if request.backend != "cuda":  # CUDA reserves huge address ranges; RSS watch covers it
            resource.setrlimit(resource.RLIMIT_AS, ((limits.memory_mb + 4096) << 20,) * 2)
        if os.getuid() != 0:  # the kernel exempts root from RLIMIT_NPROC; the worker counts instead
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes + _user_processes(),) * 2)
        from .runner import run_request

        def emit(header: dict, blobs=()) -> None:
            wire.send(fd, header, list(blobs))

        def wait_for_slot(mode: str) -> None:
            emit({"event": Event.SLOT, "mode": mode})
            if os.read(go_fd, 1) != b"g":
                raise RuntimeError(f"the worker closed the slot channel before granting the {mode} slot")

        run_request(request, emit, wait_for_slot)
    except BaseException as exc:  # noqa: BLE001 - report harness failures instead of dying silently
        code = 3
        try:
            wire.send(fd, {"event": Event.ERROR, "stage": "harness", "message": f"{type(exc).__name__}: {exc}"})
        except Exception:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(code)


def _user_processes() -> int:
    import psutil

    uid = os.getuid()
    return sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True, choices=["cuda", "interpreter"])
    parser.add_argument("--scratch", required=True)
    args = parser.parse_args()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(_PR_SET_DUMPABLE, 0)  # children cannot ptrace or read our memory
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphans of a child come back to us to be killed
    if args.backend == "interpreter":
        os.environ["TRITON_INTERPRET"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    worker = Worker(args.backend, args.scratch, in_own_pid_namespace())
    import torch  # noqa: F401 - warm imports are the point of this process
    import torch._dynamo  # noqa: F401 - its import rewraps torch.manual_seed: before the snapshot, not after
    import triton  # noqa: F401
    if args.backend == "interpreter":
        from .interpreter_compat import install
        install()  # library-style GPU kernels (autotune, libdevice, scalar .to...) run interpreted too

    from . import runner  # noqa: F401

    if args.backend == "interpreter":
        from .gpu_compile import warm_up

        warm_up()  # Triton hashes its own library once: children inherit it
        _warm_interpreter()
    gc.freeze()  # children neither scan nor copy-on-write the warm imports when they collect
    worker.serve()


def _warm_interpreter() -> None:
    """Run one tiny kernel so every forked child inherits the interpreter's one-time set-up
    (about 35 ms of each evaluation otherwise). CUDA cannot be warmed: it does not survive fork."""
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def add_one(x_ptr, n, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) + 1.0, mask=offs < n)

    x = torch.zeros(16)
    add_one[(1,)](x, 16, BLOCK=16)


if __name__ == "__main__":
    main()
