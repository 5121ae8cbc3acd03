"""The report: ``report.json`` (everything) and ``summary.txt`` (a line per check), both rewritten
after every change, atomically, so a run cut at any point still leaves a valid, current report."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

#: What a check's ``status`` can be. ``partial``: it ran, but only part of its work fit its cap.
#: ``not_available``: the code it measures is missing (a field or parameter not there yet).
#: ``not_run``: a dry run, or no GPU here. ``skipped``: the run's budget was spent before it.
DONE = ("ok", "partial", "failed", "not_available", "timed_out", "error", "skipped", "not_run")
CLEAN = ("ok",)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def strict_json(value):
    """The value with non-finite floats as None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Report:
    """The run's document; every change goes to disk at once."""

    def __init__(self, outdir: str | Path, header: dict, checks):
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.doc = {"schema": 1, "tool": "kernel_env.gpucheck", "started_at": now_iso(), **header,
                    "checks": [{"name": c.name, "title": c.title, "cap_s": round(c.cap_s, 1), "status": "pending",
                                "summary": "", "reason": None, "elapsed_s": None, "details": {}} for c in checks],
                    "complete": False}
        self.write()

    def entry(self, name: str) -> dict:
        return next(e for e in self.doc["checks"] if e["name"] == name)

    def update(self, name: str, **fields) -> None:
        self.entry(name).update(fields)
        self.write()

    def set(self, **fields) -> None:
        self.doc.update(fields)
        self.write()

    def write(self) -> None:
        self.doc["updated_at"] = now_iso()
        self.doc["could_not_check"] = could_not_check(self.doc)
        write_atomically(self.outdir / "report.json", json.dumps(strict_json(self.doc), indent=2, default=str) + "\n")
        write_atomically(self.outdir / "summary.txt", summary_text(self.doc))


def could_not_check(doc: dict) -> list[str]:
    """One line per check that did not run clean to the end, with why (a dry run: the common reason
    once, then what else each check would need)."""
    if doc.get("mode") == "dry-run":
        missing = sorted({m for e in doc["checks"] for m in e.get("missing", [])})
        return [f"all {len(doc['checks'])} checks: {doc.get('dry_reason')}",
                *([f"not importable here: {', '.join(missing)}"] if missing else []),
                *(f"{e['name']}: {e['note']}" for e in doc["checks"] if e.get("note"))]
    lines = []
    for e in doc["checks"]:
        if e["status"] in ("ok", "pending", "running", "failed"):
            continue
        lines.append(f"{e['name']}: {e['status']}: {e['reason'] or e['summary'] or 'no reason recorded'}")
    return lines


def summary_text(doc: dict) -> str:
    head = [f"kernel-env gpu check, started {doc['started_at']}, updated {doc.get('updated_at', '')}",
            f"mode: {doc.get('mode')}" + (f" ({doc['dry_reason']})" if doc.get("dry_reason") else ""),
            f"budget: {doc.get('budget_s')} s; elapsed: {doc.get('elapsed_s', 0)} s; complete: {doc['complete']}"]
    for line in doc.get("setup_lines", []):
        head.append(f"setup: {line}")
    rows = []
    for e in doc["checks"]:
        took = f"{e['elapsed_s']:.0f}" if isinstance(e["elapsed_s"], (int, float)) else "-"
        text = e["summary"] or e["reason"] or ""
        if e["status"] == "not_run":
            text = e["title"] + (f" ({e['note']})" if e.get("note") else "")
        rows.append(f"[{e['status']:>13}] {e['name']:<17} {took:>4}/{e['cap_s']:<4.0f}s  {text}")
    tail = ["could not check:", *(f"  - {line}" for line in doc["could_not_check"])] if doc["could_not_check"] else []
    return "\n".join(head + [""] + rows + ([""] + tail if tail else [])) + "\n"
