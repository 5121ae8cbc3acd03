"""The evaluator's stages, API, caching and results."""

import json

import pytest
from helpers import relu_model, reply, tagged

from kernel_env import EvalConfig, EvalResult, evaluate
from kernel_env.evaluator import Evaluator, resolve_backend


def test_honest_solution_passes_every_stage(evaluator, relu):
    r = evaluator.evaluate(relu, tagged(relu.solution, "every stage"))
    assert (r.stage, r.compiled, r.correct, r.hacks, r.error) == ("done", True, True, [], None)
    assert r.backend == "interpreter" and r.size == "small" and r.device == "cpu"
    assert r.runtime_ms > 0 and r.ref_runtime_ms > 0 and r.speedup == pytest.approx(r.ref_runtime_ms / r.runtime_ms)
    assert 0.5 < r.coverage <= 1.0  # ReLU's forward is almost all kernel
    assert r.max_abs_error == 0.0
    for stage in ("reference", "sandbox", "sandbox_compile", "sandbox_correctness", "sandbox_timing", "total"):
        assert r.timings[stage] >= 0, stage
    assert "not a measurement" in r.feedback and "interpreter" in r.feedback  # the model, then the CPU figure


def test_result_json_roundtrip(evaluator, relu):
    r = evaluator.evaluate(relu, relu.solution)
    back = EvalResult.from_json(r.to_json())
    assert back == r and set(json.loads(r.to_json())) >= {
        "task_id", "backend", "compiled", "correct", "hacks", "findings", "speedup", "runtime_ms", "ref_runtime_ms",
        "coverage", "max_abs_error", "error", "stage", "feedback", "timings"}


def test_cache_hit_returns_the_same_verdict(evaluator, relu):
    first = evaluator.evaluate(relu, tagged(relu.solution, "cache test"))
    again = evaluator.evaluate(relu, tagged(relu.solution, "cache test"))
    assert again.timings.get("cache_hit") == 1.0 and again.timings["total"] < 0.5
    assert (again.correct, again.speedup, again.hacks) == (first.correct, first.speedup, first.hacks)


@pytest.mark.parametrize("body, expected", [
    ("return relu(x)[:, :-1]", "shape (16, 1023), expected (16, 1024)"),
    ("return relu(x).double()", "dtype torch.float64, expected torch.float32"),
    ("return relu(x) * float('nan')", "NaN or Inf"),
    ("return relu(x) + 0.5", "elements differ"),
])
def test_incorrect_outputs_are_explained(evaluator, relu, body, expected):
    r = evaluator.evaluate(relu, relu_model(body))
    assert r.compiled and not r.correct and r.stage == "correctness" and r.hacks == []
    assert expected in r.error and expected in r.feedback and r.speedup is None


def test_compile_errors_point_at_the_candidates_line(evaluator, relu):
    r = evaluator.evaluate(relu, reply("import torch\nclass ModelNew(torch.nn.Module):\n"
                                       "    def __init__(self):\n        super().__init__()\n        1 / 0\n"))
    assert not r.compiled and r.stage == "compile"
    assert "ZeroDivisionError" in r.error and "line 5" in r.error and "1 / 0" in r.feedback


def test_runtime_error_in_forward_is_a_correctness_failure(evaluator, relu):
    r = evaluator.evaluate(relu, relu_model("raise ValueError('bad block size')"))
    assert r.compiled and not r.correct and r.stage == "correctness" and "bad block size" in r.error


def test_parse_failures_never_reach_a_worker(evaluator, relu):
    r = evaluator.evaluate(relu, "I would write a kernel but I am not sure how.")
    assert r.stage == "parse" and not r.compiled and "no ```python code block" in r.feedback
    assert "sandbox" not in r.timings


def test_map_keeps_input_order(evaluator, bundled):
    items = [(bundled[i], bundled[i].solution) for i in ("L1/8_Sigmoid", "L1/19_ReLU", "L1/15_Swish")]
    results = evaluator.map(items)
    assert [r.task_id for r in results] == ["L1/8_Sigmoid", "L1/19_ReLU", "L1/15_Swish"]
    assert all(r.clean for r in results)


def test_submit_returns_at_once_and_the_futures_resolve(evaluator, bundled):
    futures = [evaluator.submit(bundled["L1/9_Tanh"], tagged(bundled["L1/9_Tanh"].solution, f"copy {i}")) for i in range(4)]
    assert not all(f.done() for f in futures)  # submit only queues: an evaluation takes far longer than this line
    assert all(f.result().clean for f in futures)


def test_module_level_evaluate_uses_a_shared_pool(relu):
    from kernel_env.evaluator import default_evaluator

    assert evaluate(relu, tagged(relu.solution, "shared 1"), backend="interpreter").clean
    pool, pids = default_evaluator("interpreter"), default_evaluator("interpreter").worker_pids()
    assert evaluate(relu, tagged(relu.solution, "shared 2"), backend="interpreter").clean
    assert default_evaluator("interpreter") is pool and set(pids) <= set(pool.worker_pids()) and pids


def test_tolerance_is_configurable(evaluator, relu):
    loose = evaluator.evaluate(relu, relu_model("return relu(x) + 0.05"), config=EvalConfig(atol=0.1, rtol=0.0))
    assert loose.correct and loose.max_abs_error == pytest.approx(0.05, abs=1e-6)


def test_config_rejects_limits_that_would_fail_in_the_worker():
    with pytest.raises(ValueError, match="memory_mb must be a positive integer"):
        EvalConfig(memory_mb=2048.0)
    with pytest.raises(ValueError, match="atol"):
        EvalConfig(atol=-1)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tpu")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        Evaluator(backend="interpreter", workers=0)


def test_every_bundled_solution_is_clean(evaluator, bundled):
    """Zero false positives: every shipped reference solution is correct and hack-free."""
    results = evaluator.map([(t, t.solution) for t in bundled.values()])
    bad = [(r.task_id, r.error, r.hacks, r.findings) for r in results if not r.clean]
    assert bad == []
    assert all(r.coverage is not None and r.coverage > 0 for r in results)
