"""``python3 -m kernel_env.gpucheck OUTDIR [--budget-s 360] [--dry-run]``: the GPU check's entry.

It decides whether this machine can run the checks (torch with a visible CUDA GPU; else a dry run
that lists every check, its cap and why it cannot run here), installs what the carried bundle
provides, and runs the catalogue. It never imports torch itself: a short subprocess asks torch
whether a GPU is visible, so no CUDA state exists here when the checks fork.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import bundle, catalog, isolation
from .report import summary_text
from .runner import run_checks

ROOT = Path(__file__).resolve().parents[2]
TORCH_PROBE = ("import json, torch; print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda, "
               "'available': torch.cuda.is_available(), 'devices': torch.cuda.device_count()}))")
#: Logs kept whole up to this size; a longer one keeps its head and its tail.
LOG_LIMIT = 8 << 20


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m kernel_env.gpucheck", description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="folder for report.json, summary.txt and the logs")
    parser.add_argument("--budget-s", type=float, default=catalog.DEFAULT_BUDGET_S,
                        help="the whole run's time (the checks' caps scale with it; default 360)")
    parser.add_argument("--dry-run", action="store_true", help="list the checks and why they cannot run; run none")
    return parser.parse_args(argv)


def torch_probe(timeout_s: float = 180) -> dict:
    """torch's version and whether it sees a GPU, asked in a subprocess."""
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    try:
        out = subprocess.run([sys.executable, "-c", TORCH_PROBE], check=False, capture_output=True, text=True, timeout=timeout_s)
        return {"installed": True, **json.loads(out.stdout.strip().splitlines()[-1])}
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"installed": True, "error": f"{type(exc).__name__}: {exc}"[:300]}


def dry_reasons(dry_run: bool, probe: dict) -> list[str]:
    """Why the checks cannot run here (empty: they can)."""
    reasons = ["--dry-run was given"] if dry_run else []
    if not probe.get("installed"):
        reasons.append("torch is not installed")
    elif probe.get("error"):
        reasons.append(f"torch does not import: {probe['error']}")
    elif not probe.get("available"):
        reasons.append(f"torch {probe.get('version')} sees no CUDA GPU (torch.cuda.is_available() is false)")
    return reasons


def missing_modules(check) -> list[str]:
    return [name for name in check.needs if importlib.util.find_spec(name) is None]


def setup_lines(setup: dict, dry: bool) -> list[str]:
    """What the set-up did (or, in a dry run, would do), for the summary."""
    if not setup.get("present"):
        lines = [f"no bundle at {setup.get('folder')} (make gpu-bundle builds it)"]
    else:
        wheels = ", ".join(f"{w['name']}=={w['version']}" + ("" if w["installed"] else " (missing here)")
                           for w in setup["wheels"])
        lines = [(f"bundle {setup['folder']}: {setup['bytes'] / 2**20:.1f} MiB; wheels {wheels or 'none'}; "
                  f"debs {', '.join(setup['debs']) or 'none'}")]
    if dry:
        return lines + ["dry run: nothing installed"]
    done = setup.get("wheels_done", {})
    if done.get("installed"):
        lines.append(f"installed {', '.join(done['installed'])} into {done['target']}"
                     + (f" ({done['error']})" if done.get("error") else ""))
    bwrap = setup.get("bwrap", {})
    if bwrap.get("error"):
        lines.append(f"bubblewrap unusable ({bwrap['error']}): the evaluator falls back to isolation none")
    else:
        lines.append(f"bubblewrap: {bwrap.get('source')} {bwrap.get('path')} ({bwrap.get('version')})")
    sandbox = setup.get("sandbox", {})
    if sandbox.get("ran"):
        lines.append("sandbox probe: bubblewrap starts a CUDA worker's imports")
    elif sandbox.get("hidden_by"):
        lines.append(f"sandbox probe: bubblewrap cannot start a CUDA worker ({_last_line(sandbox['error'])}): "
                     "hidden for this run, every evaluator uses isolation none")
    lines.extend(setup.get("notes", []))
    return lines


def _last_line(text: str | None) -> str:
    return (text or "no message").strip().splitlines()[-1][:300] if text and text.strip() else "no message"


def prepare_environment(dry: bool) -> dict:
    """The project and the installed bundle on every child's path; no interpreter flag for CUDA; a
    disk cache of this run's own, so nothing stored by an earlier run answers."""
    bundle.put_on_path(ROOT)
    setup = bundle.prepare(ROOT / bundle.FOLDER, dry)
    setup["notes"] = []
    if not dry:
        os.environ["PYTHONUNBUFFERED"] = "1"
        if os.environ.pop("TRITON_INTERPRET", None) is not None:
            setup["notes"].append("TRITON_INTERPRET was set here and is removed: CUDA workers inherit TRITON_* variables")
        os.environ["KERNEL_ENV_CACHE_DIR"] = tempfile.mkdtemp(prefix="kernel-env-gpucheck-cache-")
        setup["notes"].append(f"disk cache for this run only: {os.environ['KERNEL_ENV_CACHE_DIR']}")
        setup["sandbox"] = isolation.decide()
    return setup


def trim_logs(outdir: Path, limit: int = LOG_LIMIT) -> None:
    """Keep every log under ``limit`` bytes (what comes back from a device run is limited)."""
    for path in [*outdir.glob("*.log"), outdir / "log.txt"]:
        if path.is_file() and path.stat().st_size > limit:
            data = path.read_bytes()
            path.write_bytes(data[: limit // 8] + b"\n[... cut ...]\n" + data[-(limit * 3 // 4):])


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse(argv)
    outdir = Path(args.outdir).resolve()
    probe = torch_probe()
    reasons = dry_reasons(args.dry_run, probe)
    setup = prepare_environment(dry=bool(reasons))
    setup["seconds"] = round(time.monotonic() - started, 1)  # the torch probe included
    header = {"argv": sys.argv, "python": sys.version.split()[0], "executable": sys.executable, "root": str(ROOT),
              "torch": probe, "setup": setup, "setup_lines": setup_lines(setup, bool(reasons))}
    doc = run_checks(catalog.scaled(args.budget_s), outdir, args.budget_s, header, "; ".join(reasons) or None,
                     ROOT, started, missing_modules)
    trim_logs(outdir)
    print(summary_text(doc), end="")
    print(f"report: {outdir / 'report.json'}")
    bad = [e["name"] for e in doc["checks"] if e["status"] in ("failed", "error", "timed_out")]
    return 1 if bad else 0
