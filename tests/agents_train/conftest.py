"""Fixtures for the agents training tests."""

import os

import pytest
import torch

from agents.policies import Policy


def pytest_collection_modifyitems(config, items):
    """``slow`` tests here (full learning curves, minutes) run only when asked: ``-m slow`` or AGENTS_SLOW=1."""
    if "slow" in (config.getoption("-m") or "") or os.environ.get("AGENTS_SLOW"):
        return
    skip = pytest.mark.skip(reason="full learning curve: run with -m slow or AGENTS_SLOW=1")
    for item in items:
        if "slow" in item.keywords and "agents_train" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and timings stop depending on what else runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny() -> Policy:
    return Policy.tiny(seed=0)
