"""The first release's import paths still work for one release: the same module, with a warning."""

import importlib
import sys

import pytest

from kernel_env._moved import MOVED


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_path_is_the_new_module_and_warns(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_from_imports_of_old_names_work():
    sys.modules.pop("kernel_env.ray_evaluator", None)
    with pytest.warns(DeprecationWarning):
        from kernel_env.ray_evaluator import RayEvaluator
    from kernel_env.evaluator.ray_pool import RayEvaluator as moved

    assert RayEvaluator is moved
