"""The judge's timing checks on reports built by hand (the CUDA ones cannot run on the CPU): device
time far below host time, the worker's clock around each call, timed fingerprints per call."""

import torch

from kernel_env.config import EvalConfig
from kernel_env.evaluator.judge import Judge
from kernel_env.evaluator.report import Reference, RunReport, TimedCall
from kernel_env.protocol import Trial
from kernel_env.wire import fingerprint

OUT = torch.arange(8, dtype=torch.float32)
PRINT = fingerprint(OUT, 5)


def _judge(tick_gaps=(2.0, 2.0, 2.0)) -> Judge:
    reference = Reference(outputs=[[OUT]], digests=[["d"]], times_ms=[1.0] * 3, timed_prints=[[PRINT]] * 3,
                          timed_numel=[[8]] * 3, tick_gaps_ms=list(tick_gaps))
    return Judge([Trial(1)], [0], reference, EvalConfig(), [])


def _report(ms, host_ms, external_ms, prints=None) -> RunReport:
    calls = [TimedCall(ms=m, host_ms=h, own_ms=m, fingerprints=[prints or PRINT], launches=1, external_ms=e, numel=[8])
             for m, h, e in zip(ms, host_ms, external_ms)]
    return RunReport(compiled=True, timed=calls, timing_window=(0.0, 10.0))


def test_honest_calls_pass_on_both_backends():
    judge = _judge()
    speed = judge.check_timing(_report([5.0] * 3, [5.1] * 3, [8.0] * 3))  # interpreter-like
    assert not judge.hacks and speed.runtime_ms == 5.0
    judge = _judge()
    judge.check_timing(_report([0.05] * 3, [0.09] * 3, [3.0] * 3))  # a launch-bound GPU call
    assert not judge.hacks


def test_device_time_far_below_host_time_is_tampering():
    judge = _judge()
    judge.check_timing(_report([0.01] * 3, [8.0] * 3, [9.0] * 3))  # events that were not ours
    assert "device time far below" in judge.hacks["timer_tampering"]


def test_the_workers_clock_bounds_what_is_reported():
    judge = _judge()
    judge.check_timing(_report([20.0] * 3, [20.0] * 3, [400.0] * 3))  # a rewritten start time
    assert "the worker's clock saw" in judge.hacks["timer_tampering"]
    judge = _judge()
    judge.check_timing(_report([20.0] * 3, [20.0] * 3, [None, 25.0, 25.0]))  # a tick suppressed
    assert "ticks are missing" in judge.hacks["timer_tampering"]
    judge = _judge(tick_gaps=(60.0, 60.0, 60.0))  # a slow harness: its own gap is allowed for
    judge.check_timing(_report([20.0] * 3, [20.0] * 3, [150.0] * 3))
    assert not judge.hacks


def test_each_timed_call_is_checked_against_the_reference_call_on_the_same_inputs():
    judge = _judge()
    wrong = fingerprint(OUT + 1, 5)
    judge.check_timing(_report([5.0] * 3, [5.0] * 3, [6.0] * 3, prints=wrong))
    assert "timed call 0" in judge.hacks["timed_output_mismatch"]


def _copy_op(nbytes: float) -> dict:
    return {"kind": "torch", "name": "aten.relu.default", "category": "compute", "op_class": "elementwise",
            "dtype": "float32", "precision": "fp32", "count": 1, "flops": nbytes / 8, "bytes_read": nbytes / 2,
            "bytes_written": nbytes / 2}


def test_the_speed_of_light_is_the_references_work_over_the_measured_time_on_its_gpu():
    """CUDA: the reference names its GPU and traced its timed program's work; 2 GB moved in 1 ms on
    an H100 SXM is 2 TB/s of its 3.35 TB/s."""
    judge = _judge()
    judge.ref.device_name = "NVIDIA H100 80GB HBM3"
    judge.ref.work = {"small": {"records": [_copy_op(2e9)]}}
    sol = judge.speed_of_light(1.0)
    assert sol["gpu"] == "H100" and sol["bound"] == "memory" and sol["work"] == "reference ops"
    assert abs(sol["bandwidth_fraction"] - 2e12 / 3.35e12) < 1e-3
    judge.ref.device_name = ""  # the interpreter: no device, no speed of light
    assert judge.speed_of_light(1.0) is None
    judge.ref.device_name = "NVIDIA H100 PCIe"  # a part the table does not price
    assert judge.speed_of_light(1.0) is None
