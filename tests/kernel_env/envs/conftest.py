import pytest


@pytest.fixture(scope="session")
def evaluator():
    """The env tests' own interpreter pool (2 workers), shared by every env test.

    Not the session pool of tests/conftest.py: its result cache would hand later evaluator tests
    cache hits for the shipped solutions these tests submit, and those tests inspect fresh timings.
    """
    from kernel_env import Evaluator

    with Evaluator(backend="interpreter", workers=2) as ev:
        yield ev
