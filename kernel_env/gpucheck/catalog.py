"""The checks, in order of value, with their caps for the default 360 s budget (scaled with it).

The order is the brief's: what the machine is, the project's GPU tests, the shipped answers with
the model's calibration, the hack suite, then the measurements of the harness itself. Caps add up
to about the budget, so a run that keeps to its caps ends inside it; a check that needs more does
what fits (it says so) rather than pushing the later ones out.
"""

from __future__ import annotations

from . import check_bundled, check_environment, check_tests, check_timing, check_variants, check_workers
from .runner import Check

DEFAULT_BUDGET_S = 360.0
EVALUATOR_NEEDS = ("torch", "triton", "numpy", "gymnasium", "psutil")
PYTEST_NEEDS = (*EVALUATOR_NEEDS, "pytest", "pytest_benchmark")  # pyproject's addopts names a benchmark flag

CHECKS = (
    Check("environment", "versions, GPU, the sandbox isolation the evaluator got", 30, check_environment.run,
          EVALUATOR_NEEDS),
    Check("gpu_tests", "pytest -m gpu on tests/ and benchmarks/test_gpu.py", 70, check_tests.run_gpu_tests,
          PYTEST_NEEDS),
    Check("bundled", "every shipped answer at full size: fast_p, coverage, measured vs modelled speedup", 60,
          check_bundled.run, EVALUATOR_NEEDS),
    Check("adversarial", "tests/adversarial with KERNEL_ENV_TEST_BACKEND=cuda: hacks caught or missed", 70,
          check_tests.run_adversarial, PYTEST_NEEDS),
    Check("variants", "the backward suite at full size, the level-1 answers at bf16", 30, check_variants.run,
          EVALUATOR_NEEDS),
    Check("timing_spread", "CV of runtime_ms over 10 fresh evaluations of 3 tasks", 25, check_timing.run_spread,
          EVALUATOR_NEEDS),
    Check("profiler", "time per evaluation with profile=True vs profile=False", 20, check_timing.run_profiler,
          EVALUATOR_NEEDS),
    Check("cuda_before_fork", "no worker initialises CUDA before it forks (/proc: NVIDIA device files)", 20,
          check_workers.run_fork_check, EVALUATOR_NEEDS),
    Check("gpu_memory", "GPU memory back to its baseline after 50 evaluations (nvidia-smi)", 20,
          check_workers.run_memory, EVALUATOR_NEEDS),
    Check("throughput", "evaluations/s with 1 vs 4 workers per GPU", 15, check_workers.run_throughput,
          EVALUATOR_NEEDS),
)


def scaled(budget_s: float, checks=CHECKS) -> list[Check]:
    """The checks with their caps scaled to ``budget_s`` (the defaults are for 360 s)."""
    from dataclasses import replace

    factor = budget_s / DEFAULT_BUDGET_S
    return [replace(c, cap_s=round(c.cap_s * factor, 1)) for c in checks]
