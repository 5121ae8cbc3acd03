"""Run checks one after another, each in a forked child with its own time cap.

Why a child per check: a check that overruns its cap (a stuck evaluation, a hung GPU test) can
then be cut, with every process it started, and the checks after it still run on a clean slate.
The child streams progress (JSON lines on a pipe) and the report is rewritten on each, so even a
cut check leaves what it had measured. The runner itself never imports torch: forking a process
that has initialised CUDA would break CUDA in the child.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .procs import kill_tree
from .report import Report

#: Below this many seconds a check is not started (its start-up alone would use them).
MIN_CAP_S = 5.0
#: How long a check may take to exit after it has sent its final result (closing pools).
EXIT_GRACE_S = 15.0
#: A check aims to finish this many seconds before its cap, so the cap stays a backstop.
SELF_LIMIT_MARGIN_S = 3.0


@dataclass
class Context:
    """What a check gets: where it runs, its deadline, a way to report progress, earlier results."""

    root: Path
    outdir: Path
    deadline: float  # time.monotonic() at which the runner cuts this check
    progress: Callable[[dict], None]
    earlier: dict = field(default_factory=dict)  # name -> details of the checks already run

    def left(self) -> float:
        """Seconds this check has left before it should stop on its own."""
        return self.deadline - SELF_LIMIT_MARGIN_S - time.monotonic()


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    cap_s: float
    run: Callable[[Context], dict]  # returns details with "status" and a one-line "summary"
    needs: tuple[str, ...] = ()  # importable modules it needs
    note: str = ""  # what the dry run should say about it beyond the common reason


def run_checks(checks, outdir: str | Path, budget_s: float, header: dict | None = None,
               dry_reason: str | None = None, root: Path | None = None, started: float | None = None,
               missing: Callable[[Check], list[str]] | None = None) -> dict:
    """Run ``checks`` in order within ``budget_s`` (counted from ``started``); returns the report.
    With ``dry_reason`` none runs: each is listed with its cap and why not."""
    started = time.monotonic() if started is None else started
    report = Report(outdir, {"mode": "dry-run" if dry_reason else "gpu", "dry_reason": dry_reason,
                             "budget_s": budget_s, **(header or {})}, checks)
    earlier: dict = {}
    for check in checks:
        absent = missing(check) if missing else []
        if dry_reason:
            extra = [f"not importable here: {', '.join(absent)}"] if absent else []
            report.update(check.name, status="not_run", reason="; ".join([dry_reason, *extra]), missing=absent,
                          note=check.note)
        else:
            left = budget_s - (time.monotonic() - started)
            earlier[check.name] = _run_entry(report, check, absent, left, budget_s, Path(root or "."), earlier)
        report.set(elapsed_s=round(time.monotonic() - started, 1))
    report.set(complete=True, elapsed_s=round(time.monotonic() - started, 1))
    return report.doc


def _run_entry(report: Report, check: Check, absent: list[str], left: float, budget_s: float, root: Path,
               earlier: dict) -> dict:
    """One check of a real run: not available, skipped, or run under its (trimmed) cap."""
    if absent:
        report.update(check.name, status="not_available", reason=f"not importable here: {', '.join(absent)}")
        return {}
    if left < MIN_CAP_S:
        report.update(check.name, status="skipped", reason=f"the run's budget was spent ({budget_s:.0f} s)")
        return {}
    cap = min(check.cap_s, left)
    report.update(check.name, status="running", cap_s=round(cap, 1))
    outcome = run_one(check, cap, root, report.outdir, earlier,
                      lambda details: report.update(check.name, details=details))
    report.update(check.name, **outcome)
    print(f"[{outcome['status']}] {check.name} ({outcome['elapsed_s']} s): "
          f"{outcome['summary'] or outcome['reason'] or ''}"[:400], flush=True)
    return outcome.get("details", {})


def run_one(check: Check, cap_s: float, root: Path, outdir: Path, earlier: dict,
            on_progress: Callable[[dict], None]) -> dict:
    """Fork, run the check in the child, relay its progress; cut it at ``cap_s``."""
    read_fd, write_fd = os.pipe()
    t0 = time.monotonic()
    deadline = t0 + cap_s
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(check, write_fd, Context(root, outdir, deadline, lambda d: None, dict(earlier)), parent)
    os.close(write_fd)
    try:
        final, last, status = _relay(pid, read_fd, deadline, on_progress)
    finally:
        os.close(read_fd)
    elapsed = round(time.monotonic() - t0, 1)
    if final is not None:
        return _outcome(final, elapsed)
    if status is None:
        return {"status": "timed_out", "elapsed_s": elapsed, "details": last,
                "summary": last.get("summary", "") if isinstance(last, dict) else "",
                "reason": f"cut at its cap of {cap_s:.0f} s (what it had measured is kept in details)"}
    return {"status": "error", "elapsed_s": elapsed, "details": last, "summary": "",
            "reason": f"the check's process ended without a result ({_describe_exit(status)}); see log.txt"}


def _relay(pid: int, fd: int, deadline: float, on_progress) -> tuple[dict | None, dict, int | None]:
    """Read the child's messages until it exits, or until the deadline (a short grace once its final
    result is in); returns (final, last progress, wait status, None when it was cut)."""
    buffer, final, last, end = b"", None, {}, deadline
    while True:
        now = time.monotonic()
        if now >= end:
            kill_tree(pid)
            return final, last, (0 if final is not None else None)
        if not select.select([fd], [], [], min(end - now, 1.0))[0]:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return final, last, _reap(pid, end - time.monotonic())
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            message = _decode(line)
            if "progress" in message:
                last = message["progress"]
                on_progress(last)
            if "final" in message:
                final = message["final"]
                end = time.monotonic() + EXIT_GRACE_S


def _reap(pid: int, wait_s: float) -> int:
    end = time.monotonic() + max(wait_s, 0.0)
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    kill_tree(pid)
    return 0


def _decode(line: bytes) -> dict:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _outcome(final: dict, elapsed: float) -> dict:
    final = dict(final) if isinstance(final, dict) else {"status": "error", "summary": f"bad result {final!r}"}
    status = final.pop("status", "error")
    reason = final.pop("reason", None)
    summary = final.get("summary", "")
    if status in ("not_available", "error") and not reason:
        reason = summary
    return {"status": status, "elapsed_s": elapsed, "summary": summary, "reason": reason, "details": final}


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _child(check: Check, fd: int, context: Context, parent: int) -> None:
    """The check's process: its own session (so it can be cut with everything below it), dies with
    the runner, output to log.txt; sends progress and one final result, then exits."""
    code = 0
    try:
        os.setsid()
        _die_with(parent)
        _log_to(context.outdir / "log.txt", check.name)

        def send(kind: str, payload: dict) -> None:
            _write_all(fd, json.dumps({kind: payload}, default=str).encode() + b"\n")

        context.progress = lambda details: send("progress", details)
        send("final", check.run(context))
    except BaseException as exc:  # noqa: BLE001 - a broken check is a result, never a crash of the run
        code = 1
        try:
            trace = traceback.format_exc()
            print(trace, file=sys.stderr)
            _write_all(fd, json.dumps({"final": {"status": "error", "summary": f"{type(exc).__name__}: {exc}"[:300],
                                                 "traceback": trace[-4000:]}}).encode() + b"\n")
        except (OSError, ValueError):  # the runner is gone or the pipe broke: nobody to tell
            os._exit(code)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed log: the result has gone already
            os._exit(code)
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _die_with(parent: int) -> None:
    """Ask for SIGKILL when the runner dies (Linux), and go now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _log_to(path: Path, name: str) -> None:
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    print(f"\n===== {name} (pid {os.getpid()}) {time.strftime('%H:%M:%S')} =====", flush=True)
