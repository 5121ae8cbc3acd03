"""The kernel-env command for tasks and single evaluations."""

import json
from pathlib import Path

from kernel_env.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kernelbench"
SOLUTION = Path(__file__).parents[2] / "tasks" / "bundled" / "level1" / "19_ReLU.solution.md"


def test_tasks_list_json(capsys):
    assert main(["tasks", "list", "--tasks", "bundled", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 50 and {"id", "level", "sizes", "solution", "hash"} <= set(rows[0])


def test_tasks_check_reports_every_task(capsys):
    """Sizes written inside get_inputs shrink too (tasks.widths), so all five fixtures are usable."""
    assert main(["tasks", "check", "--tasks", str(FIXTURES), "--size", "small", "--json"]) == 0
    reports = {r["task_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(reports) == 5 and all(r["ok"] for r in reports.values())
    assert reports["L1/3_Hardcoded_sizes"]["outputs"]


def test_eval_json_has_the_result_and_its_reward(capsys):
    code = main(["eval", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--backend", "interpreter", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["correct"] and out["hacks"] == [] and out["stage"] == "done"
    assert 1.0 < out["reward"] <= 5.0  # drkernel: 1 + min(speedup, 3) + coverage


def test_eval_unknown_task_is_a_clear_error(capsys):
    assert main(["eval", "--task", "L9/nope", "--solution", str(SOLUTION)]) == 2
    assert "no task 'L9/nope'" in capsys.readouterr().err


def test_eval_on_cuda_without_a_gpu_says_so_in_one_line(capsys):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    assert main(["eval", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--backend", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: backend='cuda' needs an NVIDIA GPU") and len(err.strip().splitlines()) == 1


def test_a_closed_pipe_ends_quietly():
    """``kernel-env tasks list | head`` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    reader_gone = ("import os, sys; r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
                   "from kernel_env.cli import main; sys.exit(main(['tasks', 'list']))")
    done = subprocess.run([sys.executable, "-c", reader_gone], capture_output=True, text=True, timeout=300)
    assert done.returncode == 141 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
