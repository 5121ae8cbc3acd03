"""Fixtures for the agents tests."""

import pytest
import torch

from agents.policies import Policy


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
