"""Check a: what this machine is (versions, GPU, kernel) and which isolation the evaluator got.

The isolation is read after one real evaluation (``Evaluator.isolation_used`` is known only once a
worker has started); when it is ``none`` the bubblewrap probe's own error says why (under gVisor
bubblewrap may not be able to create its namespaces)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from .runner import Context

PACKAGES = ("torch", "triton", "numpy", "gymnasium", "psutil", "pytest", "pytest-benchmark", "pytest-timeout",
            "transformers", "stable-baselines3")


def run(ctx: Context) -> dict:
    from . import shared
    from .procs import nvidia_smi

    details = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
               "kernel_release": os.uname().release, "cpus": os.cpu_count(), "packages": package_versions(),
               "gpus": nvidia_smi("name,memory.total,driver_version,compute_cap") or "nvidia-smi unavailable"}
    if details["kernel_release"].startswith("4.4.0"):
        details["runtime_guess"] = "gVisor (it reports kernel 4.4.0)"
    details["device_name"] = shared.device_name()
    details["gpu_spec"] = shared.spec_name(details["device_name"])
    details["bwrap"] = bwrap_state()
    ctx.progress(details)
    details.update(one_evaluation())
    details.update(torch_cuda())  # last: it creates a CUDA context in this process
    ok = details.get("evaluation", {}).get("clean") and details.get("isolation_used")
    details["status"] = "ok" if ok else "failed"
    gpu = details.get("device_name") or details.get("torch_device_name") or "no GPU name"
    details["summary"] = (f"{gpu} (model spec {details['gpu_spec']}), torch {details['packages'].get('torch')}, "
                          f"triton {details['packages'].get('triton')}, isolation {details.get('isolation_used') or '?'}"
                          + ("" if details.get("evaluation", {}).get("clean") else
                             f"; the probe evaluation was not clean: {details.get('evaluation', {}).get('error')}"))
    return details


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def bwrap_state() -> dict:
    """Whether bubblewrap runs here, and if not, what it said (the evaluator's probe hides that)."""
    import shutil

    from kernel_env.evaluator import sandbox

    state = {"path": shutil.which("bwrap"), "works": sandbox.bwrap_works(), "probe_error": None}
    if state["path"] and not state["works"]:
        try:
            probe = subprocess.run(sandbox.bwrap_command("interpreter") + ["--", "/bin/true"], check=False,
                                   capture_output=True, text=True, timeout=30)
            state["probe_error"] = (probe.stderr.strip() or f"exit {probe.returncode}")[-500:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            state["probe_error"] = str(exc)
    return state


def one_evaluation() -> dict:
    """The shipped ReLU answer at the small size on CUDA: the cheapest end-to-end evaluation."""
    from kernel_env import Evaluator

    from .shared import bundled_tasks, compact

    relu = bundled_tasks("small")["L1/19_ReLU"]
    with Evaluator(backend="cuda", workers=1) as ev:
        result = ev.evaluate(relu, relu.solution, size="small")
        return {"evaluation": compact(result), "isolation_used": ev.isolation_used}


def torch_cuda() -> dict:
    import torch

    out = {"torch_cuda_version": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if out["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        out.update(torch_device_name=props.name, capability=f"{props.major}.{props.minor}",
                   multiprocessors=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1))
    return out
