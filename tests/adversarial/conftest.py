"""Tasks for the adversarial suite: bundled ones, plus small programs written to make one hack pay.

The suite judges on the interpreter; ``KERNEL_ENV_TEST_BACKEND=cuda`` makes it judge on a GPU instead
(``kernel_env.gpucheck`` runs it so), at the small size its cases are written for, with
``KERNEL_ENV_TEST_WORKERS`` workers (default 1; they share the GPUs ``CUDA_VISIBLE_DEVICES`` names,
so ``CUDA_VISIBLE_DEVICES=0`` puts them all on the first).
"""

import os

import pytest

from tasks.loaders import task_from_source

#: The variables that pick the backend the suite's evaluator judges on, and its workers there.
BACKEND_VARIABLE, WORKERS_VARIABLE = "KERNEL_ENV_TEST_BACKEND", "KERNEL_ENV_TEST_WORKERS"
TEST_BACKENDS = ("interpreter", "cuda")


def backend_under_test() -> str:
    """The interpreter unless ``KERNEL_ENV_TEST_BACKEND`` names another backend; a typo is an error,
    not a silent interpreter run."""
    value = os.environ.get(BACKEND_VARIABLE, "").strip().lower() or "interpreter"
    if value not in TEST_BACKENDS:
        raise ValueError(f"{BACKEND_VARIABLE} must be one of {TEST_BACKENDS}, not {value!r}")
    return value


def _small_by_default(evaluator_class):
    """An evaluator whose default size is small on every backend (CUDA's own default is full)."""

    class SmallByDefault(evaluator_class):
        def submit(self, task, response, size=None, config=None):
            return super().submit(task, response, size or "small", config)

    return SmallByDefault


@pytest.fixture(scope="session")
def evaluator(evaluator):
    """The root conftest's interpreter pool, or a one-worker CUDA pool when the switch says cuda."""
    if backend_under_test() == "interpreter":
        yield evaluator
        return
    from kernel_env import Evaluator

    workers = int(os.environ.get(WORKERS_VARIABLE, "1"))
    with _small_by_default(Evaluator)(backend="cuda", workers=workers) as ev:
        yield ev


#: Row centering on long rows: the row mean of i.i.d. standard-normal inputs is within the tolerance
#: of zero, so "return x" (a closed form for such inputs) passes unless inputs are shifted (hack 14).
CENTER = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """Subtracts each row's mean."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x - x.mean(dim=1, keepdim=True)


rows = 64
cols = 1048576


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []


SIZES = {"small": {"rows": 4, "cols": 262144}}
'''

#: The mean of a large standard-normal tensor: near-constant across seeds, so zeros pass (hack 15).
DEGENERATE = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """Mean of all elements."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.mean()


rows = 64
cols = 4096


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []


SIZES = {"small": {"rows": 64, "cols": 4096}}
'''

#: A long-K matmul (heavy, left in torch by the lazy submission) followed by a bias add (hack 19).
MATMUL_BIAS = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """y = x @ W + b."""

    def __init__(self, k, n):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(k, n) / k ** 0.5)
        self.bias = nn.Parameter(torch.randn(n))

    def forward(self, x):
        return x @ self.weight + self.bias


batch = 128
k = 16384
n = 128


def get_inputs():
    return [torch.randn(batch, k)]


def get_init_inputs():
    return [k, n]


SIZES = {"small": {"batch": 128, "k": 16384, "n": 128}}
'''


def _without_alt(task):
    """The same program without its second shape (a distinct source, so a distinct cache key)."""
    source = task.source.replace(', "small_alt": {"batch_size": 12, "dim": 1000}', "")
    return task_from_source(source + "\n# fixed shape\n", task.level, task.name + "_fixed_shape.py")


@pytest.fixture(scope="session")
def tasks(bundled):
    return {
        "relu": bundled["L1/19_ReLU"],
        "relu_fixed": _without_alt(bundled["L1/19_ReLU"]),
        "softmax": bundled["L1/20_Softmax"],
        "matmul": bundled["L1/1_Square_matmul"],
        "linear": bundled["L1/16_Linear"],
        "center": task_from_source(CENTER, 1, "90_Row_center.py"),
        "degenerate": task_from_source(DEGENERATE, 1, "91_Mean_all.py"),
        "matmul_bias": task_from_source(MATMUL_BIAS, 2, "90_Long_matmul_bias.py"),
    }
