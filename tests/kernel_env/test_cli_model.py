"""``kernel-env model`` and ``kernel-env eval --explain``: the modelled breakdown, or why there is none."""

import json
from pathlib import Path
from typing import ClassVar

import pytest

import kernel_env
from kernel_env import EvalResult
from kernel_env.cli import main

SOLUTION = Path(__file__).parents[2] / "tasks" / "bundled" / "level1" / "19_ReLU.solution.md"


def _row(name, kind, us, count=1, bound="memory"):
    return {"name": name, "kind": kind, "flops": 2e9, "bytes": 3e6, "us": us, "bound": bound, "count": count,
            "detail": {"dram": us}}


MODELLED = {"gpu": "A100", "runtime_us": 12.5, "ref_runtime_us": 25.0, "speedup": 2.0, "bound": "memory",
            "flags": ["work_scaled"],
            "rows": [_row("small_kernel", "kernel", 2.5, count=4), _row("relu_kernel", "kernel", 10.0)],
            "ref_rows": [_row("aten::relu", "torch", 25.0)]}


class _FakeEvaluator:
    """Stands in for the pool: hands back ``result`` and remembers the config it was asked with."""

    result: EvalResult
    configs: ClassVar[list] = []

    def __init__(self, **kw):
        self.backend = "interpreter"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def evaluate(self, task, response, size=None, config=None):
        self.configs.append(config)
        return self.result


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(kernel_env, "Evaluator", _FakeEvaluator)
    _FakeEvaluator.configs = []
    return _FakeEvaluator


def _correct(**kw) -> EvalResult:
    return EvalResult(task_id="L1/19_ReLU", backend="interpreter", size="small", compiled=True, correct=True,
                      speedup=0.001, runtime_ms=100.0, ref_runtime_ms=0.1, coverage=1.0, stage="done", **kw)


def test_model_prints_the_header_then_every_row_heaviest_first(fake, capsys):
    fake.result = _correct(modelled=MODELLED)
    assert main(["model", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--gpu", "a100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("modelled on A100: 12.5 us vs reference 25.0 us (speedup 2.00x, memory-bound); "
                        "flags: work_scaled")
    assert len(lines) == 4
    assert lines[1].split()[:4] == ["yours", "kernel", "relu_kernel", "10.0"]
    assert lines[2].split()[:5] == ["yours", "kernel", "small_kernel", "x4", "2.5"]
    assert lines[3].split()[:4] == ["reference", "torch", "aten::relu", "25.0"]
    assert "3.00 MB" in lines[1] and "2.000 GFLOP" in lines[1]
    assert fake.configs[0].gpu == "A100"


def test_model_json_and_the_no_model_reason(fake, capsys):
    fake.result = _correct(modelled=MODELLED)
    assert main(["model", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modelled"] == MODELLED and out["no_model"] is None
    fake.result = EvalResult(task_id="L1/19_ReLU", backend="interpreter", compiled=True, stage="correctness",
                             error="incorrect: max abs error 1.0\nmore")
    assert main(["model", "--task", "L1/19_ReLU", "--solution", str(SOLUTION)]) == 1
    assert capsys.readouterr().out.strip() == ("no model: the result is not correct (stage correctness): "
                                               "incorrect: max abs error 1.0")


def test_eval_explain_prints_the_breakdown_after_the_usual_output(fake, capsys):
    fake.result = _correct(modelled=MODELLED, feedback="Your kernel is correct.")
    assert main(["eval", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--explain"]) == 0
    out = capsys.readouterr().out
    reward, said, breakdown = (out.index(text) for text in ("reward (drkernel, modelled speedup): 4.000",
                                                             "Your kernel is correct.", "modelled on A100"))
    assert reward < said < breakdown
    assert "reference torch  aten::relu" in out


def test_unknown_gpu_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["model", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--gpu", "V100"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown GPU 'V100'" in err and "H100" in err


def test_the_gpu_reaches_the_evaluation(fake, capsys):
    fake.result = _correct(modelled=MODELLED)
    assert main(["model", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--gpu", "A100"]) == 0
    assert fake.configs[-1].gpu == "A100"


def test_model_on_the_bundled_relu_runs_end_to_end(capsys):
    code = main(["model", "--task", "L1/19_ReLU", "--solution", str(SOLUTION), "--backend", "interpreter"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("modelled on H100:") and "yours     kernel" in out and "reference" in out