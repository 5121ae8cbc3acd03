"""Which isolation the run's evaluators can use, decided once before the checks.

bubblewrap can run a plain command and still fail to start a CUDA worker (the CUDA backend adds
binds for /sys and the NVIDIA devices; under gVisor namespaces may be refused). The evaluator's own
probe tries the plain command only, so a CUDA worker would then die at every start and no check
would measure anything. Here the probe is the CUDA worker's own command line, running the worker's
imports. When it fails, the reason goes into the report and bubblewrap is hidden for this run (a
stand-in ``bwrap`` that fails comes first on ``PATH``), so every evaluator falls back to isolation
"none", as it does on a machine without bubblewrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import subprocess, sys
from kernel_env.evaluator import sandbox
command = sandbox.bwrap_command("cuda") + ["--", sys.executable, "-c", "import gymnasium, torch, triton, kernel_env.inside.worker"]
run = subprocess.run(command, env=sandbox.worker_environment("cuda"), capture_output=True, text=True, timeout=240)
sys.stderr.write(run.stderr[-1500:])
sys.exit(run.returncode)
"""
HIDDEN = Path(tempfile.gettempdir()) / "kernel-env-gpucheck-no-bwrap"


def probe_cuda_sandbox(timeout_s: float = 300) -> dict:
    """Start what a CUDA worker's bubblewrap would start (in a subprocess: this process stays free
    of torch); returns whether it ran and what bubblewrap said."""
    if shutil.which("bwrap") is None:
        return {"ran": False, "error": "no bwrap on PATH"}
    try:
        run = subprocess.run([sys.executable, "-c", PROBE], check=False, capture_output=True, text=True,
                             timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ran": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ran": run.returncode == 0, "error": None if run.returncode == 0 else run.stderr.strip()[-1500:]}


def hide_bwrap() -> str:
    """Put a failing ``bwrap`` first on PATH: the evaluator's probe then says bubblewrap is unusable."""
    HIDDEN.mkdir(parents=True, exist_ok=True)
    stand_in = HIDDEN / "bwrap"
    stand_in.write_text("#!/bin/sh\necho 'hidden by kernel_env.gpucheck: see report.json setup' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    os.environ["PATH"] = os.pathsep.join([str(HIDDEN), os.environ.get("PATH", "")])
    return str(stand_in)


def decide() -> dict:
    """Probe; hide bubblewrap when it cannot start a CUDA worker. The result goes into the report."""
    probe = probe_cuda_sandbox()
    if probe["ran"]:
        return {"isolation": "bwrap", **probe}
    if probe["error"] == "no bwrap on PATH":
        return {"isolation": "none", **probe}
    return {"isolation": "none", "hidden_by": hide_bwrap(), **probe}
