"""The backward suite: well-formed backward tasks whose shipped answers earn the honest reward."""

import ast

import pytest

from kernel_env.evaluator.submission import extract_code
from tasks import load_tasks
from tasks.task import declares_backward


@pytest.fixture(scope="module")
def suite():
    return load_tasks("backward", size="small")


def _parameters(tree: ast.Module, cls: str) -> list[str]:
    """``self.name = nn.Parameter(...)`` / ``nn.Linear(...)`` / ``nn.LayerNorm(...)`` attribute names of ``cls``."""
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return sorted(t.attr for n in ast.walk(body) if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Attribute) and isinstance(n.value, ast.Call)
                  and isinstance(n.value.func, ast.Attribute) and n.value.func.attr[0].isupper())


def test_the_suite_has_the_promised_tasks(suite):
    names = {t.name for t in suite}
    assert len(suite) >= 10 and {1, 2} == {t.level for t in suite}
    for word in ("ReLU", "Softmax", "LayerNorm", "RMSNorm", "Linear", "Loss", "Attention"):
        assert any(word in n for n in names), word
    for task in suite:
        assert declares_backward(task.program("small")) and task.solution, task.id
        code = extract_code(task.solution)
        assert "torch.autograd.Function" in code and "def backward" in code, task.id
        assert _parameters(ast.parse(task.source), "Model") == _parameters(ast.parse(code), "ModelNew"), task.id


def test_every_shipped_answer_is_clean(evaluator, suite):
    results = evaluator.map([(t, t.solution) for t in suite])
    unclean = {r.task_id: (r.error, r.hacks) for r in results if not r.clean}
    assert not unclean
    assert all(r.modelled and r.modelled["speedup"] > 0 for r in results)  # forward and backward both modelled


def test_task_validation_checks_the_gradients_too(suite):
    """A mean loss's gradients (~1e-4) are constant to a plain 1e-2 check, so ``tasks check`` flags them
    there; under the evaluator's scale-aware comparison every backward task is checkable."""
    from kernel_env.scoring.tolerance import judged_by
    from tasks import check_task

    by_name = {t.name: t for t in suite}
    plain = check_task(by_name["9_MSELossBackward"])
    assert plain.problems == ["near-constant output across seeds (values 1, 2) (within atol=rtol=1e-2): "
                              "a constant answer would pass"]
    assert len(plain.outputs) == 3  # the loss, then the two gradients
    for task in suite:
        report = check_task(task, judged=judged_by())
        assert report.ok, (task.id, report.problems)
