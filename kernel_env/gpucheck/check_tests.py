"""Checks b and d: the project's own tests on the GPU.

b: every ``gpu``-marked test (the files under tests/ that carry the marker, then
``benchmarks/test_gpu.py``, in two sessions: two modules named ``test_gpu`` cannot share one).
d: the adversarial suite with ``KERNEL_ENV_TEST_BACKEND=cuda`` (tests/adversarial/conftest.py), the
catalogue first, so that a session cut at its cap has judged the hacks before anything else; four
workers share the GPU, and the naive-harness tests (in-process, CPU only) are left out.

Both run with ``TRITON_INTERPRET`` handled on purpose: tests/conftest.py sets it to 1 for in-process
helpers, and the sandbox passes ``TRITON_*`` variables on to its workers, so a CUDA worker started
from a test session would run the kernels in Triton's interpreter. The GPU tests get
``TRITON_INTERPRET=0`` (they run no in-process interpreter code); the adversarial suite keeps 1 for its
naive harness, and its conftest drops the variable from the CUDA workers' environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .pytests import INTERRUPT_GRACE_S, counts_line, failing, run_pytest
from .runner import Context

BENCHMARK_FILE = "benchmarks/test_gpu.py"
#: The benchmarks' session needs about this long (start-up, one run of each benchmark).
BENCHMARK_MIN_S = 25.0
ADVERSARIAL_FIRST = ("test_catalogue.py", "test_honest.py")
ADVERSARIAL_WORKERS = 4
#: Tests that run each hack in this process under the interpreter: the same on any machine, so the
#: GPU's minutes go to the evaluator's verdicts instead.
NAIVE_HARNESS_TESTS = "passes_a_naive_harness"


def gpu_test_files(root: Path) -> list[str]:
    """Test files under tests/ that use the ``gpu`` marker, found by reading them."""
    return sorted(str(p.relative_to(root)) for p in (root / "tests").rglob("test_*.py")
                  if "mark.gpu" in p.read_text(errors="replace"))


def run_gpu_tests(ctx: Context) -> dict:
    env = {"TRITON_INTERPRET": "0"}
    files = gpu_test_files(ctx.root)
    has_bench = (ctx.root / BENCHMARK_FILE).is_file()
    share = ctx.left() - (BENCHMARK_MIN_S if has_bench else 0.0)
    sessions = {"tests": run_pytest(["-m", "gpu", *files], ctx.root, ctx.outdir / "pytest-gpu-tests.log",
                                    share - INTERRUPT_GRACE_S, env)}
    ctx.progress(_gpu_details(sessions, files))
    if has_bench and ctx.left() > BENCHMARK_MIN_S - 5:
        sessions["benchmarks"] = run_pytest(["-m", "gpu", BENCHMARK_FILE], ctx.root,
                                            ctx.outdir / "pytest-gpu-benchmarks.log", ctx.left() - INTERRUPT_GRACE_S, env)
    return _gpu_details(sessions, files, has_bench)


def _gpu_details(sessions: dict, files: list[str], has_bench: bool = False) -> dict:
    failures = [f for s in sessions.values() for f in failing(s)]
    complete = all(s["complete"] for s in sessions.values()) and (not has_bench or "benchmarks" in sessions)
    ran = sum(sum(s["counts"].values()) for s in sessions.values())
    status = "failed" if failures else "ok" if complete and ran else "partial"
    summary = "; ".join(f"{name}: {counts_line(s)}" for name, s in sessions.items())
    if has_bench and "benchmarks" not in sessions:
        summary += "; benchmarks: not run (no time left)"
    return {"status": status, "summary": summary, "files": files, "env": {"TRITON_INTERPRET": "0"},
            "failures": failures, "sessions": sessions}


def adversarial_files(root: Path) -> list[str]:
    folder = root / "tests" / "adversarial"
    rest = sorted(p.name for p in folder.glob("test_*.py") if p.name not in ADVERSARIAL_FIRST)
    return [f"tests/adversarial/{name}" for name in (*ADVERSARIAL_FIRST, *rest) if (folder / name).is_file()]


def adversarial_env() -> dict:
    """The switch, and several workers on GPU 0 so the catalogue's evaluations fit the cap."""
    return {"KERNEL_ENV_TEST_BACKEND": "cuda", "KERNEL_ENV_TEST_WORKERS": str(ADVERSARIAL_WORKERS),
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES") or "0"}


def run_adversarial(ctx: Context) -> dict:
    env = adversarial_env()
    session = run_pytest(["-k", f"not {NAIVE_HARNESS_TESTS}", *adversarial_files(ctx.root)], ctx.root,
                         ctx.outdir / "pytest-adversarial.log", ctx.left() - INTERRUPT_GRACE_S, env)
    cases = hack_cases(session["tests"])
    by_code = per_code(cases, hack_codes(ctx.root))
    honest = {tid.split("[", 1)[1].rstrip("]"): outcome for tid, outcome in session["tests"].items()
              if "::test_honest_submission_is_clean[" in tid}
    false_positives = sorted(name for name, outcome in honest.items() if outcome != "passed")
    missed = sorted(case for case, outcome in cases.items() if outcome != "passed")
    status = "failed" if failing(session) else "ok" if session["complete"] else "partial"
    summary = (f"{counts_line(session)}; hacks caught {len(cases) - len(missed)}/{len(cases)}"
               + (f" (missed: {', '.join(missed[:6])}{' ...' if len(missed) > 6 else ''})" if missed else "")
               + f"; honest clean {len(honest) - len(false_positives)}/{len(honest)}")
    return {"status": status, "summary": summary, "env": env, "cases": cases, "by_code": by_code,
            "honest": honest, "false_positives": false_positives, "failures": failing(session), "session": session}


def hack_cases(tests: dict[str, str]) -> dict[str, str]:
    """Case id -> outcome of ``test_the_evaluator_names_the_hack[case]`` (passed: caught)."""
    marker = "::test_the_evaluator_names_the_hack["
    return {tid.split(marker, 1)[1].rstrip("]"): outcome for tid, outcome in tests.items() if marker in tid}


def hack_codes(root: Path) -> dict[str, list[str]]:
    """Case id -> the hack codes it must (or may) get, read from the suite's own catalogue."""
    for folder in (root / "tests", root / "tests" / "adversarial"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        from hack_submissions import HACKS
    except Exception as exc:  # noqa: BLE001 - the mapping is a convenience; outcomes per case remain
        return {"_error": [f"{type(exc).__name__}: {exc}"]}
    return {case.id: sorted(case.codes | case.any_of) for case in HACKS}


def per_code(cases: dict[str, str], codes: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """Hack code -> the cases that expect it, split into caught and missed."""
    table: dict[str, dict[str, list[str]]] = {}
    for case, outcome in sorted(cases.items()):
        for code in codes.get(case, ["(unknown)"]):
            table.setdefault(code, {"caught": [], "missed": []})["caught" if outcome == "passed" else "missed"].append(case)
    return table
