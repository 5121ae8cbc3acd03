"""The one accounting the judge reads: modelled comparison, who did the work, lower precision."""

import pytest

from kernel_env.perf.assess import WORK_SCALED, assess
from kernel_env.perf.records import RecordError


def _op(name, flops, nbytes, dtype="float32", precision="fp32", category="compute", op_class="elementwise"):
    return {"kind": "torch", "name": name, "category": category, "op_class": op_class, "flops": flops,
            "bytes_read": nbytes, "bytes_written": nbytes, "dtype": dtype, "precision": precision, "count": 1}


REFERENCE = {"small": {"records": [_op("aten.relu.default", 1e4, 4e4)]},
             "full": {"records": [_op("aten.relu.default", 1e8, 4e8)], "output_bytes": 4e8}}


def test_torch_doing_the_work_is_measured_in_modelled_time():
    got = assess({"small": {"records": [_op("aten.relu.default", 1e4, 4e4), _op("aten.mul.Tensor", 1e4, 4e4)]}},
                 REFERENCE)
    assert got.torch_share > 0.9 and got.own_share == 0.0
    assert WORK_SCALED in got.modelled.flags and got.modelled.speedup < 1.0  # two passes against one


def test_lower_precision_tensors_are_named():
    low = _op("aten._to_copy.default", 0, 4e4, dtype="bfloat16", precision="bf16", category="glue", op_class="copy")
    got = assess({"small": {"records": [low]}}, REFERENCE)
    assert got.low_precision == ("aten._to_copy.default -> bfloat16",)


def test_forged_or_missing_records_give_no_model():
    with pytest.raises(RecordError):
        assess({"small": {"records": [{**_op("x", 1, 1), "flops": -5}]}}, REFERENCE)
    with pytest.raises(KeyError):
        assess({}, REFERENCE)
