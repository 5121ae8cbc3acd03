"""The full-size recording's budget counts interpreted operations, not seconds: the same code gets
the same model on a quiet and on a loaded machine."""

import pytest
import torch

from kernel_env.inside.work import OverBudget, record_call
from tests.kernel_env.inside import work_kernels as K


def test_a_recording_past_its_operation_budget_stops_and_one_within_it_does_not():
    x = torch.randn(8192)
    within = record_call(K.relu, [x], max_ops=10_000)
    assert any(r["kind"] == "kernel" for r in within.records)
    with pytest.raises(Exception, match="more than 3 interpreted operations") as raised:  # Triton wraps it
        record_call(K.relu, [x], max_ops=3)
    assert isinstance(raised.value, OverBudget) or isinstance(raised.value.__cause__, OverBudget) \
        or "OverBudget" in str(raised.value)
