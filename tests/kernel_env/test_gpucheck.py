"""kernel_env.gpucheck on a machine without a GPU: the dry run, the runner's caps and rewrites, the
statistics and parsers it reports with, and the adversarial suite's backend switch."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernel_env.gpucheck import catalog
from kernel_env.gpucheck.bundle import ar_members, install_missing_wheels, wheels
from kernel_env.gpucheck.check_tests import adversarial_files, gpu_test_files, hack_cases, per_code
from kernel_env.gpucheck.cli import dry_reasons
from kernel_env.gpucheck.pytests import parse_output
from kernel_env.gpucheck.runner import Check, run_checks
from kernel_env.gpucheck.stats import cv

ROOT = Path(__file__).resolve().parents[2]
NAMES = [c.name for c in catalog.CHECKS]


def read_report(outdir: Path) -> dict:
    return json.loads((outdir / "report.json").read_text())


# -- the dry run -------------------------------------------------------------------------------------

def test_the_dry_run_lists_every_check_with_its_cap_and_why_it_cannot_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kernel_env.gpucheck", str(tmp_path / "r"), "--dry-run"],
                         check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = read_report(tmp_path / "r")
    assert report["mode"] == "dry-run" and report["complete"]
    assert report["dry_reason"].startswith("--dry-run was given")  # then, without a GPU: why not
    assert [c["name"] for c in report["checks"]] == NAMES
    assert all(c["status"] == "not_run" and c["cap_s"] > 0 and "--dry-run" in c["reason"] for c in report["checks"])
    summary = (tmp_path / "r" / "summary.txt").read_text()
    assert all(name in summary for name in NAMES) and "could not check" in summary
    assert summary in out.stdout


def test_the_module_dry_runs_without_torch_or_gymnasium(tmp_path):
    """``python3 -m kernel_env.gpucheck OUT`` (make gpu-check) on a Python that has neither."""
    script = ("import runpy, sys\n"
              "sys.modules['torch'] = sys.modules['gymnasium'] = None  # importlib then finds neither\n"
              f"sys.argv = ['gpucheck', {str(tmp_path / 'r')!r}]\n"
              "runpy.run_module('kernel_env.gpucheck', run_name='__main__', alter_sys=True)\n")
    out = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = read_report(tmp_path / "r")
    assert report["dry_reason"] == "torch is not installed"
    assert all("torch" in c["missing"] and "gymnasium" in c["missing"] for c in report["checks"])


def test_why_the_checks_cannot_run():
    assert dry_reasons(False, {"installed": False}) == ["torch is not installed"]
    assert dry_reasons(True, {"installed": True, "version": "2.13.0+cpu", "available": False}) == [
        "--dry-run was given", "torch 2.13.0+cpu sees no CUDA GPU (torch.cuda.is_available() is false)"]
    assert dry_reasons(False, {"installed": True, "version": "2.11.0+cu130", "available": True}) == []


def test_the_caps_fit_the_default_budget_and_scale_with_it():
    assert sum(c.cap_s for c in catalog.CHECKS) <= catalog.DEFAULT_BUDGET_S
    assert [c.cap_s for c in catalog.scaled(720)] == [2 * c.cap_s for c in catalog.CHECKS]


# -- the runner --------------------------------------------------------------------------------------

def quick(ctx):
    return {"status": "ok", "summary": "quick one", "pid": os.getpid()}


def sleeper(ctx):
    ctx.progress({"summary": "started, then stuck", "measured": [1, 2]})
    time.sleep(120)
    return {"status": "ok", "summary": "never reached"}


def broken(ctx):
    raise RuntimeError("this check has a bug")


def test_a_check_over_its_cap_is_cut_and_the_later_ones_still_run(tmp_path):
    checks = [Check("first", "quick", 60, quick), Check("stuck", "sleeps", 3, sleeper),
              Check("buggy", "raises", 60, broken), Check("after", "quick", 60, quick),
              Check("absent", "needs a module", 60, quick, needs=("no_such_module_here",))]
    t0 = time.monotonic()
    doc = run_checks(checks, tmp_path, budget_s=600, root=ROOT,
                     missing=lambda c: [m for m in c.needs if importlib.util.find_spec(m) is None])
    entries = {e["name"]: e for e in doc["checks"]}
    assert entries["first"]["status"] == "ok" and entries["first"]["details"]["pid"] != os.getpid()
    stuck = entries["stuck"]
    assert stuck["status"] == "timed_out" and "cut at its cap" in stuck["reason"]
    assert stuck["details"]["measured"] == [1, 2]  # what it had sent before the cut is kept
    assert entries["buggy"]["status"] == "error" and "this check has a bug" in entries["buggy"]["summary"]
    assert entries["after"]["status"] == "ok"
    assert entries["absent"]["status"] == "not_available" and "no_such_module_here" in entries["absent"]["reason"]
    assert time.monotonic() - t0 < 100  # the sleeper's 120 s never ran out
    assert read_report(tmp_path) == json.loads(json.dumps(doc)) and doc["complete"]


def test_a_spent_budget_skips_the_rest(tmp_path):
    doc = run_checks([Check("only", "quick", 60, quick)], tmp_path, budget_s=1, root=ROOT)
    assert doc["checks"][0]["status"] == "skipped"


RUN_TWO = """
import os, sys, time
from pathlib import Path
from kernel_env.gpucheck.runner import Check, run_checks

def first(ctx):
    return {"status": "ok", "summary": "first is done"}

def second(ctx):
    Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(600)
    return {"status": "ok", "summary": "never"}

run_checks([Check("first", "fast", 60, first), Check("second", "slow", 600, second)], sys.argv[1], 900)
"""


def test_the_report_holds_each_check_as_soon_as_it_ends(tmp_path):
    """Kill the run during the second check: the report on disk already has the first one's result,
    and the second's process goes with the run."""
    script, pid_file = tmp_path / "run_two.py", tmp_path / "second.pid"
    script.write_text(textwrap.dedent(RUN_TWO))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, str(script), str(tmp_path / "r"), str(pid_file)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.is_file(), "the second check never started"
        report = read_report(tmp_path / "r")
        assert [c["status"] for c in report["checks"]] == ["ok", "running"]
        assert report["checks"][0]["summary"] == "first is done" and not report["complete"]
        assert "first is done" in (tmp_path / "r" / "summary.txt").read_text()
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    second = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while Path(f"/proc/{second}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{second}").exists(), "the check's process outlived the run"


# -- statistics --------------------------------------------------------------------------------------

def test_cv():
    assert cv([2.0, 4.0]) == pytest.approx(2 ** 0.5 / 3) and cv([1.0]) is None


# -- parsers -----------------------------------------------------------------------------------------

PYTEST_OUTPUT = """\
tests/adversarial/test_catalogue.py::test_the_evaluator_names_the_hack[06-output-cache] PASSED          [ 10%]
tests/adversarial/test_catalogue.py::test_the_evaluator_names_the_hack[12-side-stream] FAILED           [ 20%]
tests/adversarial/test_honest.py::test_honest_submission_is_clean[config-cache] PASSED                  [ 30%]
tests/kernel_env/evaluator/test_gpu.py::test_timing_spread_is_small SKIPPED (needs an NVIDIA GPU)       [ 40%]
=========================== short test summary info ============================
FAILED tests/adversarial/test_catalogue.py::test_the_evaluator_names_the_hack[12-side-stream] - AssertionError: ({'x'}, None)
================== 1 failed, 2 passed, 1 skipped, 3 warnings in 12.34s ==================
"""


def test_pytest_output_is_read_line_by_line():
    parsed = parse_output(PYTEST_OUTPUT)
    assert parsed["complete"] and parsed["final"] == {"failed": 1, "passed": 2, "skipped": 1, "warnings": 3}
    assert parsed["counts"] == {"passed": 2, "failed": 1, "skipped": 1}
    failed = "tests/adversarial/test_catalogue.py::test_the_evaluator_names_the_hack[12-side-stream]"
    assert parsed["tests"][failed] == "failed" and parsed["reasons"][failed].startswith("AssertionError")
    cut = parse_output(PYTEST_OUTPUT.split("=====")[0])
    assert not cut["complete"] and cut["counts"]["passed"] == 2
    cases = hack_cases(parsed["tests"])
    assert cases == {"06-output-cache": "passed", "12-side-stream": "failed"}
    table = per_code(cases, {"06-output-cache": ["output_caching"], "12-side-stream": ["side_stream"]})
    assert table == {"output_caching": {"caught": ["06-output-cache"], "missed": []},
                     "side_stream": {"caught": [], "missed": ["12-side-stream"]}}


def test_the_suites_it_runs_are_found_in_the_checkout():
    assert "tests/kernel_env/evaluator/test_gpu.py" in gpu_test_files(ROOT)
    assert adversarial_files(ROOT)[:2] == ["tests/adversarial/test_catalogue.py", "tests/adversarial/test_honest.py"]


def test_the_bundled_tasks_go_round_the_levels():
    from types import SimpleNamespace

    from kernel_env.gpucheck.check_bundled import interleaved_by_level

    tasks = [SimpleNamespace(id=f"L{lv}/{i}", level=lv) for lv, i in [(1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (3, 2)]]
    assert [t.id for t in interleaved_by_level(tasks)] == ["L1/1", "L2/1", "L3/1", "L1/2", "L3/2", "L1/3"]


# -- the bundle --------------------------------------------------------------------------------------

def test_only_missing_wheels_are_installed(tmp_path):
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "pytest-0.0.1-py3-none-any.whl").write_bytes(b"not read: pytest is installed")
    assert [(n, v) for n, v, _ in wheels(tmp_path)] == [("pytest", "0.0.1")]
    done = install_missing_wheels(tmp_path, tmp_path / "site")
    assert done["installed"] == [] and done["already_there"][0].startswith("pytest==")
    assert not (tmp_path / "site").exists()


def test_ar_members_reads_a_deb_shaped_archive():
    def member(name: str, body: bytes) -> bytes:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(body):<10}`\n".encode()
        return header + body + (b"\n" if len(body) % 2 else b"")

    blob = b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.xz", b"abc")
    assert ar_members(blob) == [("debian-binary", b"2.0\n"), ("data.tar.xz", b"abc")]


# -- the adversarial suite's backend switch ----------------------------------------------------------

@pytest.fixture
def adversarial_conftest():
    spec = importlib.util.spec_from_file_location("adversarial_conftest_under_test",
                                                  ROOT / "tests" / "adversarial" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_adversarial_suite_judges_on_the_interpreter_by_default(adversarial_conftest, monkeypatch):
    monkeypatch.delenv(adversarial_conftest.BACKEND_VARIABLE, raising=False)
    assert adversarial_conftest.backend_under_test() == "interpreter"
    monkeypatch.setenv(adversarial_conftest.BACKEND_VARIABLE, " CUDA ")
    assert adversarial_conftest.backend_under_test() == "cuda"
    monkeypatch.setenv(adversarial_conftest.BACKEND_VARIABLE, "gpu")
    with pytest.raises(ValueError, match="KERNEL_ENV_TEST_BACKEND"):
        adversarial_conftest.backend_under_test()



def test_the_variants_check_counts_each_kind():
    from kernel_env.gpucheck.check_variants import details

    rows = {"backward": [{"task_id": "L1/1_ReLUBackward", "clean": True, "stage": "done", "hacks": [], "error": None}],
            "bf16": [{"task_id": "L1/19_ReLU", "clean": False, "stage": "correctness", "hacks": [], "error": "x"}]}
    report = details(rows, total=3)
    assert report["status"] == "partial" and report["summary"] == "2/3 done; backward 1/1 clean, bf16 0/1 clean"
    assert details(rows, total=2)["status"] == "failed"
    assert report["not_clean"] == [{"kind": "bf16", "task_id": "L1/19_ReLU", "stage": "correctness", "hacks": [],
                                    "error": "x"}]
