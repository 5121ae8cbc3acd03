"""Speed of light: the roofline fractions of a measured CUDA time, the device-name lookup, and where the
figure shows (result record, feedback, bench)."""

import json
import math

import pytest

from kernel_env import EvalResult, bench
from kernel_env.perf import GPUS, OWN_KERNELS, REFERENCE_OPS, gpu_for_device, sol_of_records, speed_of_light, work_of
from kernel_env.perf.sol import ABOVE_PEAK
from kernel_env.scoring.feedback import feedback
from kernel_env.scoring.result import SCHEMA_VERSION

H100, H200 = GPUS["H100"], GPUS["H200"]


def _op(name="aten.add.Tensor", op_class="elementwise", flops=0.0, read=0.0, written=0.0, precision="fp32",
        category="compute", count=1):
    return {"kind": "torch", "name": name, "category": category, "op_class": op_class, "flops": flops,
            "bytes_read": read, "bytes_written": written, "dtype": "float32", "precision": precision, "count": count}


def _launch(**kw):
    fields = {"name": "k", "grid": [4, 1, 1], "programs": 4.0, "executed": 4.0, "num_warps": 4,
              "extrapolation": "full", "bytes_loaded": 0.0, "bytes_stored": 0.0, "access_bytes_loaded": 0.0,
              "access_bytes_stored": 0.0, "sector_bytes_loaded": 0.0, "sector_bytes_stored": 0.0,
              "unique_bytes_loaded": 0.0, "unique_bytes_stored": 0.0, "near_reuse_bytes": 0.0, "alu_ops": 0.0,
              "sfu_ops": 0.0, "dot_flops": {}, "max_program_bytes": 0.0, "max_program_ops": 0.0,
              "max_program_dot_flops": 0.0, "count": 1, "kind": "kernel"}
    return {**fields, **kw}


# -- arithmetic --------------------------------------------------------------------------------------

def test_a_copy_moving_2_gb_in_1_ms_on_an_h100_reaches_2_tb_s():
    sol = speed_of_light(0, 2e9, 1000.0, "H100")
    assert sol["achieved_gbps"] == pytest.approx(2000.0) and sol["achieved_tflops"] == 0.0
    assert sol["bandwidth_fraction"] == pytest.approx(2 / 3.35) and sol["bandwidth_fraction"] == pytest.approx(
        0.597015, abs=1e-6)
    assert sol["compute_fraction"] == 0.0 and sol["fraction"] == sol["bandwidth_fraction"]
    assert (sol["bound"], sol["gpu"], sol["work"], sol["flags"]) == ("memory", "H100", REFERENCE_OPS, [])
    assert sol["intensity"] == 0.0 and sol["runtime_us"] == 1000.0 and sol["bytes"] == 2e9
    assert json.loads(json.dumps(sol)) == sol


def test_a_bf16_matmul_is_compute_bound_against_the_dense_tensor_peak():
    n = 8192
    flops, moved = 2 * n**3, 3 * n * n * 2  # 1.0995e12 FLOPs, 402.7 MB of bf16
    sol = speed_of_light({"bf16": flops}, moved, 2000.0, "H100")
    assert sol["achieved_tflops"] == pytest.approx(549.755814, rel=1e-9)  # 1.0995e12 FLOP / 2 ms
    assert sol["compute_fraction"] == pytest.approx(549.755814e12 / 989.5e12, rel=1e-9)
    assert sol["compute_fraction"] == pytest.approx(0.555590, abs=1e-6)
    assert sol["bandwidth_fraction"] == pytest.approx(0.060097, abs=1e-6)  # 402.7 MB / 2 ms / 3.35 TB/s
    assert sol["bound"] == "compute" and sol["fraction"] == sol["compute_fraction"] and sol["precision"] == "bf16"
    assert sol["intensity"] == pytest.approx(n / 3) and sol["ridge"] == pytest.approx(989.5e12 / 3.35e12)
    assert sol["intensity"] > sol["ridge"]


def test_a_total_takes_the_given_precision_and_mixed_work_adds_the_time_at_each_peak():
    fp32 = speed_of_light(33.5e9, 0, 1000.0, "H100")  # 33.5 GFLOP in 1 ms on a 67 TFLOP/s part
    assert fp32["compute_fraction"] == pytest.approx(0.5) and fp32["bound"] == "compute" and fp32["intensity"] is None
    tf32 = speed_of_light(33.5e9, 0, 1000.0, "H100", precision="tf32")  # the TF32 peak is 494.5 TFLOP/s
    assert tf32["compute_fraction"] == pytest.approx(33.5 / 494.5) and tf32["precision"] == "tf32"
    at_the_roof = speed_of_light(67e9, 0, 1000.0, "H100")
    assert at_the_roof["fraction"] == pytest.approx(1.0) and at_the_roof["flags"] == []
    mixed = speed_of_light({"fp16": 989.5e9, "fp32": 67e9}, 0, 1000.0, "H100")  # 1 ms + 1 ms at the peaks
    assert mixed["compute_fraction"] == pytest.approx(2.0) and mixed["flops"] == pytest.approx(1056.5e9)
    assert mixed["precision"] == "fp16" and mixed["flags"] == [ABOVE_PEAK]


def test_tf32x3_costs_three_tf32_passes():
    sol = speed_of_light({"tf32x3": 49.45e9}, 0, 1000.0, "H100")  # a tenth of a millisecond of TF32, three times
    assert sol["compute_fraction"] == pytest.approx(0.3)


def test_the_bound_follows_intensity_against_the_ridge_and_picks_the_larger_fraction():
    ridge = 989.5e12 / 3.35e12
    below = speed_of_light({"fp16": 0.9 * ridge * 1e9}, 1e9, 1000.0, H100)
    above = speed_of_light({"fp16": 1.1 * ridge * 1e9}, 1e9, 1000.0, H100)
    assert below["bound"] == "memory" and below["fraction"] == below["bandwidth_fraction"] > below["compute_fraction"]
    assert above["bound"] == "compute" and above["fraction"] == above["compute_fraction"] > above["bandwidth_fraction"]


def test_the_same_work_and_time_score_lower_on_a_faster_part():
    h100, h200 = speed_of_light(0, 2e9, 1000.0, H100), speed_of_light(0, 2e9, 1000.0, H200)
    assert h200["fraction"] == pytest.approx(2 / 4.8) and h200["fraction"] < h100["fraction"]


def test_a_fraction_above_one_is_kept_and_flagged():
    sol = speed_of_light(0, 5e9, 1000.0, "H100")  # 5 TB/s on a 3.35 TB/s part: L2 served repeated reads
    assert sol["fraction"] > 1 and sol["fraction"] == pytest.approx(5 / 3.35) and sol["flags"] == [ABOVE_PEAK]


@pytest.mark.parametrize("args", [
    (0, 1e9, 0.0, "H100"), (0, 1e9, -5.0, "H100"), (0, 1e9, math.nan, "H100"), (0, 1e9, math.inf, "H100"),
    (0, -1.0, 10.0, "H100"), (0, math.nan, 10.0, "H100"), (-1.0, 1e9, 10.0, "H100"), ({"fp16": math.nan}, 0, 10.0, "H100"),
    ({"fp13": 1e9}, 0, 10.0, "H100"), (0, 0, 10.0, "H100"), (0, 1e9, 10.0, None), (0, 1e9, 10.0, "V100"),
    (0, 1e9, 10.0, "NVIDIA H100 PCIe"), (0, 1e9, "10", "H100"), (0, True, 10.0, "H100"), (None, 1e9, 10.0, "H100"),
    (0, 1e308, 1e-300, "H100"),
])
def test_bad_input_gives_no_figure_rather_than_an_exception(args):
    assert speed_of_light(*args) is None


def test_an_unknown_work_source_or_precision_gives_no_figure():
    assert speed_of_light(0, 1e9, 10.0, "H100", work="candidate") is None
    assert speed_of_light(1e9, 0, 10.0, "H100", precision="fp13") is None


def test_the_gpu_can_be_a_spec_a_table_name_or_a_cuda_device_name():
    by_name = [speed_of_light(0, 1e9, 1000.0, g) for g in (H100, "h100", "NVIDIA H100 80GB HBM3")]
    assert by_name[0] == by_name[1] == by_name[2] and by_name[0]["gpu"] == "H100"


# -- work from records -------------------------------------------------------------------------------

def test_reference_work_sums_ops_at_the_precision_they_run_and_skips_views():
    records = [_op("aten.mm.default", "matmul", flops=2e9, read=8e6, written=4e6, precision="bf16"),
               _op("aten.relu.default", flops=1e6, read=4e6, written=4e6, precision="bf16", count=2),
               _op("aten.view.default", "view", read=4e6, category="glue"),
               _op("aten.clone.default", "copy", read=4e6, written=4e6, category="glue")]
    work = work_of(records)
    assert work.flops == {"bf16": 2e9, "fp32": 1e6} and work.bytes == 28e6 and work.source == REFERENCE_OPS


def test_own_kernel_work_counts_dot_and_other_ops_and_distinct_bytes():
    k = _launch(dot_flops={"fp16": 4e9}, alu_ops=1e6, sfu_ops=2e5, unique_bytes_loaded=6e6, sector_bytes_loaded=5e6,
                unique_bytes_stored=2e6, access_bytes_stored=3e6)
    work = work_of([k], OWN_KERNELS)
    assert work.flops == {"fp16": 4e9, "fp32": 1.2e6} and work.bytes == 7e6 and work.source == OWN_KERNELS


def test_records_that_fail_validation_give_no_work_and_no_figure():
    forged = [_op(flops=-1.0)]
    assert work_of(forged) is None and sol_of_records(forged, 10.0, "H100") is None
    assert work_of("not a list") is None


def test_sol_of_records_is_work_of_then_speed_of_light():
    records = [_op("aten.clone.default", "copy", read=1e9, written=1e9, category="glue")]
    sol = sol_of_records(records, 1000.0, "NVIDIA H100 80GB HBM3")
    assert sol == speed_of_light({}, 2e9, 1000.0, "H100")
    assert sol["bandwidth_fraction"] == pytest.approx(2 / 3.35) and sol["work"] == REFERENCE_OPS
    assert sol_of_records(records, 1000.0, "NVIDIA A800-SXM4-80GB") is None
    assert sol_of_records(records, 1000.0, "H100", source=OWN_KERNELS)["work"] == OWN_KERNELS


# -- device names ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("device", "part"), [
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA GeForce RTX 4090", "RTX4090"), ("  nvidia  h100 80gb HBM3 ", "H100"),
])
def test_cuda_device_names_map_to_their_spec(device, part):
    assert gpu_for_device(device) is GPUS[part]


@pytest.mark.parametrize("device", [
    "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200 NVL", "NVIDIA GH200 480GB", "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100 80GB PCIe", "NVIDIA L40", "NVIDIA GeForce RTX 4090 D", "NVIDIA GeForce RTX 4090 Laptop GPU",
    "Tesla V100-SXM2-16GB", "cuda:0", "", None,
])
def test_parts_not_in_the_table_get_no_spec(device):
    assert gpu_for_device(device) is None


# -- where it shows ----------------------------------------------------------------------------------

def _correct(sol=None, task_id="L1/a", **kw) -> EvalResult:
    return EvalResult(task_id, backend="cuda", compiled=True, correct=True, speedup=1.2, runtime_ms=1.0,
                      ref_runtime_ms=1.2, coverage=1.0, stage="done", sol=sol, **kw)


def test_a_result_with_sol_round_trips_and_a_version_3_record_still_loads():
    r = _correct(speed_of_light(0, 2e9, 1000.0, "H200"))
    assert r.schema_version == SCHEMA_VERSION and EvalResult.from_json(r.to_json()) == r
    v3 = {k: v for k, v in r.to_dict().items() if k != "sol"} | {"schema_version": 3}
    old = EvalResult.from_dict(v3)
    assert old.sol is None and old.speedup == 1.2 and old.schema_version == SCHEMA_VERSION


def test_feedback_names_the_bandwidth_share_of_a_memory_bound_kernel():
    sol = speed_of_light(0, 2.9e9, 1000.0, "NVIDIA H200")
    text = feedback(_correct(sol))
    assert ("Speed of light on H200 (the reference's work over your measured time): 60% of HBM bandwidth "
            "(2.9 TB/s achieved), memory-bound.") in text
    assert text.index("Runtime 1.000 ms") < text.index("Speed of light") < text.index("100% of the time")


def test_feedback_names_the_precision_peak_of_a_compute_bound_kernel_and_flags_above_peak():
    compute = feedback(_correct(speed_of_light({"bf16": 445e9}, 1e6, 1000.0, "H100")))
    assert "45% of the BF16 peak (445 TFLOP/s achieved), compute-bound." in compute
    assert "Above 100%" not in compute
    above = feedback(_correct(speed_of_light(0, 5e9, 1000.0, "H100")))
    assert "149% of HBM bandwidth (5 TB/s achieved), memory-bound. Above 100%: caches served repeated reads" in above


def test_feedback_without_sol_is_unchanged():
    text = feedback(_correct())
    assert "Speed of light" not in text
    assert text == ("Your kernel is correct. Runtime 1.000 ms vs reference 1.200 ms: speedup 1.20x. "
                    "100% of the time is spent in your own kernels. Make it faster if you can, keeping it correct.")


class _Task:
    def __init__(self, task_id, level=1):
        self.id, self.level = task_id, level


def test_bench_adds_a_median_sol_column_and_per_task_fields_only_when_results_have_sol():
    results = {"L1/a": _correct(speed_of_light(0, 1e9, 1000.0, "H100"), "L1/a"),       # 0.2985
               "L1/b": _correct(speed_of_light(0, 2e9, 1000.0, "H100"), "L1/b"),       # 0.5970
               "L1/c": _correct(speed_of_light(0, 3e9, 1000.0, "H100"), "L1/c", hacks=["output_caching"]),
               "L1/d": _correct(None, "L1/d")}
    rows = [bench._row(_Task(t), r) for t, r in results.items()]
    assert rows[0]["sol_fraction"] == pytest.approx(1 / 3.35) and rows[0]["sol_bound"] == "memory"
    assert "sol_fraction" not in rows[3]
    summary = bench.summarize(rows)
    assert summary["all"]["median_sol"] == pytest.approx((1 / 3.35 + 2 / 3.35) / 2)  # clean rows only
    table = bench.format_table(summary)
    assert table.splitlines()[0].endswith("| mean coverage | median SOL | speedups |")
    assert "| all | 4 | 4 | 1.00 | 1.00 | 0.25 | 0.75 | 0.75 | 0.00 | 0.00 | 0.00 | 100% | 45% | measured |" in table
    report = bench.report(rows, summary, {})
    assert report["results"][1]["sol_fraction"] == pytest.approx(2 / 3.35)
    assert json.loads(json.dumps(report)) == report


def test_bench_without_sol_keeps_rows_summary_and_table_as_they_were():
    rows = [bench._row(_Task("L1/a"), _correct(None))]
    assert not any(k.startswith("sol") for k in rows[0]) and "median_sol" not in bench.summarize(rows)["all"]
    table = bench.format_table(bench.summarize(rows))
    assert table.splitlines()[0].endswith("| mean coverage | speedups |") and "SOL" not in table


def test_median_sol_of_odd_and_empty_groups():
    rows = [{"clean": True, "sol_fraction": f} for f in (0.9, 0.1, 0.5)] + [{"clean": True}]
    assert bench.median_sol(rows) == 0.5 and bench.median_sol([]) is None
