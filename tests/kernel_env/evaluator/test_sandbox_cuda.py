"""The CUDA worker's sandbox command and environment, checked without a GPU (found by the GPU check's
rehearsal: both broke every CUDA worker before any GPU saw them)."""

import shutil

import pytest

from kernel_env.evaluator import sandbox


def test_the_gpu_mounts_come_before_the_root_is_made_read_only(monkeypatch):
    monkeypatch.setattr(sandbox.glob, "glob", lambda pattern: ["/dev/nvidia0", "/dev/nvidiactl"])
    cmd = sandbox.bwrap_command("cuda")
    remount = cmd.index("--remount-ro")
    assert cmd.index("/sys") < remount and cmd.index("/dev/nvidiactl") < remount
    assert "/sys" not in sandbox.bwrap_command("interpreter")


@pytest.mark.skipif(shutil.which("bwrap") is None or not sandbox.bwrap_works(), reason="needs a working bubblewrap")
def test_the_cuda_command_starts_where_bubblewrap_works():
    assert sandbox.bwrap_works("cuda")


def test_cuda_workers_never_inherit_the_interpreter_flag(monkeypatch):
    """A test run (tests/conftest.py) sets TRITON_INTERPRET=1 for its own process; a CUDA worker that
    inherited it would run every kernel interpreted on the CPU."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert "TRITON_INTERPRET" not in sandbox.worker_environment("cuda")
    assert sandbox.worker_environment("interpreter")["TRITON_INTERPRET"] == "1"
