"""Run a pytest session in a subprocess with a time limit and read its verbose output.

The output is parsed line by line (``-v`` lines, the short summary, the final counts), not from a
JUnit file, because a session cut at its limit writes no JUnit file but its lines are already there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

OUTCOMES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
VERBOSE_LINE = re.compile(r"^(?P<id>\S+\.py::.+?) (?P<outcome>" + "|".join(OUTCOMES) + r")(?: \(.*\))?"
                          r"(?:\s+\[\s*\d+%\])?\s*$")  # pytest 8 adds a skip's reason in parentheses
SUMMARY_REASON = re.compile(r"^(?P<outcome>FAILED|ERROR) (?P<id>\S+\.py::\S+?)(?: - (?P<reason>.*))?$")
FINAL_LINE = re.compile(r"^=+ (?P<counts>.*?) in [\d.]+s(?: \([^)]*\))? =+$")
#: How long an interrupted session gets to print its summary and close its pools.
INTERRUPT_GRACE_S = 10.0
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)")


def parse_output(text: str) -> dict:
    """Per-test outcomes, failure reasons from the short summary, the final counts (None when the
    session was cut before printing them)."""
    tests: dict[str, str] = {}
    reasons: dict[str, str] = {}
    final = None
    for line in text.splitlines():
        line = line.rstrip()
        if match := VERBOSE_LINE.match(line):
            tests[match["id"]] = match["outcome"].lower()
        elif match := SUMMARY_REASON.match(line):
            reasons[match["id"]] = (match["reason"] or "")[:300]
        elif match := FINAL_LINE.match(line):
            final = {_plural(kind): int(n) for n, kind in COUNT.findall(match["counts"])}
    counts: dict[str, int] = {}
    for outcome in tests.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return {"tests": tests, "counts": counts, "reasons": reasons, "final": final, "complete": final is not None}


def _plural(kind: str) -> str:
    return {"error": "errors", "warning": "warnings"}.get(kind, kind)


def run_pytest(args: list[str], root: Path, log: Path, timeout_s: float, env: dict | None = None) -> dict:
    """``python -m pytest -v ARGS`` from ``root``; output to ``log``; cut at ``timeout_s``."""
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args]
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            code = proc.wait(timeout=max(timeout_s, 1.0))
            cut = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code, cut = None, True
    parsed = parse_output(log.read_text(errors="replace"))
    return {"command": " ".join(command[1:]), "exit_code": code, "cut_at_s": round(timeout_s, 1) if cut else None,
            "elapsed_s": round(time.monotonic() - started, 1), "log": log.name, **parsed}


def _kill_group(proc: subprocess.Popen) -> None:
    from .procs import kill_tree

    try:  # as Ctrl-C: pytest prints what it has run, and its teardown closes the pools it opened
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=INTERRUPT_GRACE_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    kill_tree(proc.pid)


def failing(parsed: dict) -> list[str]:
    """Failed or erroring test ids with their reason, for the summary."""
    return [f"{tid}: {parsed['reasons'].get(tid, '')}".rstrip(": ") for tid, outcome in parsed["tests"].items()
            if outcome in ("failed", "error")]


def counts_line(parsed: dict) -> str:
    counts = parsed["final"] or parsed["counts"]
    text = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "warnings") or "no tests ran"
    return text + ("" if parsed["complete"] else " (cut before the end)")
