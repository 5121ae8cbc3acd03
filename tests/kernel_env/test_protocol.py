"""Requests cross the pipe as JSON and come back typed; a malformed one is refused with a reason."""

import json

import pytest

from kernel_env.config import EvalConfig
from kernel_env.protocol import (
    CandidateRequest,
    ProtocolError,
    ReferenceRequest,
    Timing,
    Trial,
    limits_of,
    request_from_wire,
    timing_counts,
)


def _reference(**changes):
    fields = dict(backend="interpreter", device="cpu", program="x = 1", alt_program=None,
                  trials=(Trial(42), Trial(43, variant="scaled"), Trial(1042, reuse=True, role="reuse")),
                  init_seed=42, timing=Timing(1, 2, (5, 6, 7)), limits=limits_of(EvalConfig()))
    return ReferenceRequest(**{**fields, **changes})


def test_requests_round_trip_through_json():
    ref = _reference()
    cand = CandidateRequest(**{**vars(ref), "fingerprint_key": 7}, code="class ModelNew: pass",
                            kernel_names=("k",), profile=True)
    for request in (ref, cand):
        back = request_from_wire(json.loads(json.dumps(request.to_wire())))
        assert back == request and type(back) is type(request)


def test_defaults_follow_the_backend_and_the_config():
    assert timing_counts(EvalConfig(), "cuda") == (3, 100) and timing_counts(EvalConfig(iters=7), "cuda")[1] == 7
    assert limits_of(EvalConfig(), result_mb=80).max_result_mb == 80


@pytest.mark.parametrize("header, why", [
    ({"kind": "mystery"}, "unknown request kind"),
    ({**_reference().to_wire(), "limits": {"timeout_s": 1}}, "malformed reference request"),
    ({**_reference().to_wire(), "trials": [{"seed": 1, "colour": "red"}]}, "malformed reference request"),
    ({**_reference().to_wire(), "backend": "tpu"}, "unknown backend"),
    ({**_reference().to_wire(), "timing": {"warmup": 1, "iters": 5, "seeds": [1, 2]}}, "timing needs 6 seeds"),
])
def test_malformed_requests_are_refused(header, why):
    with pytest.raises(ProtocolError, match=why):
        request_from_wire(header)
