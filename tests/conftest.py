import atexit
import os
import shutil
import tempfile

import pytest

# no test writes to the user's cache (~/.cache/kernel-env): one private folder per session (subprocesses
# inherit it), removed at exit
os.environ["KERNEL_ENV_CACHE_DIR"] = tempfile.mkdtemp(prefix="kernel-env-test-cache-")
atexit.register(shutil.rmtree, os.environ["KERNEL_ENV_CACHE_DIR"], True)

os.environ.setdefault("TRITON_INTERPRET", "1")  # in-process helpers (selfcheck) use the interpreter


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bundled():
    from tasks import load_tasks

    return {t.id: t for t in load_tasks("bundled", size="small")}


@pytest.fixture(scope="session")
def evaluator():
    """One warm interpreter pool for the whole session, as users share one across envs."""
    from kernel_env import Evaluator

    with Evaluator(backend="interpreter", workers=2) as ev:
        yield ev


@pytest.fixture
def relu(bundled):
    return bundled["L1/19_ReLU"]


@pytest.fixture(scope="module")
def compat():
    """The interpreter as the worker has it (``interpreter_compat.install()``), undone when the
    module's tests end: the rest of the session keeps the bare interpreter."""
    from kernel_env.inside import interpreter_compat

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interpreter_compat, "_set", lambda owner, name, value: mp.setattr(owner, name, value, raising=False))
        mp.setattr(interpreter_compat, "_installed", False)
        mp.setattr(interpreter_compat, "_missing", set())
        interpreter_compat.install()
        assert interpreter_compat._missing == set()
        yield interpreter_compat
