"""The GPU table: the parts the model prices for, their figures, and how names resolve."""

import pytest

from kernel_env.perf import DEFAULT_GPU, GPUS, gpu, price

NEEDED = ("fp64", "fp32", "tf32", "fp16", "bf16", "int8")


def test_the_default_is_the_h100_and_the_five_parts_are_there():
    assert DEFAULT_GPU == "H100" and gpu().name == "H100" and gpu(None) is GPUS["H100"]
    assert {"H100", "H200", "A100", "L40S", "RTX4090"} <= set(GPUS)


@pytest.mark.parametrize("name", ["h100", "H100-SXM", "a100-80gb", "4090", "rtx4090", "l40s", "h200"])
def test_names_resolve_case_insensitively_and_by_alias(name):
    assert gpu(name) in GPUS.values()


def test_an_unknown_gpu_names_the_known_ones():
    with pytest.raises(KeyError, match="H100"):
        gpu("V100")


@pytest.mark.parametrize("name", sorted(GPUS))
def test_every_part_has_consistent_figures(name):
    g = GPUS[name]
    assert set(NEEDED) <= set(g.peaks)
    assert g.peaks["fp16"] > g.peaks["fp32"] and g.peaks["bf16"] == g.peaks["fp16"]
    assert g.peaks["tf32"] >= g.peaks["fp32"] > g.peaks["fp64"]
    assert g.l2_bandwidth > g.hbm_bandwidth > 0 and g.l2_bytes >= 40 << 20 and 100 <= g.sms <= 150
    assert 1e-6 <= g.launch_s <= 1e-5 and g.max_warps_per_sm % g.max_blocks_per_sm == 0


def test_peaks_are_dense_halves_of_the_datasheet_sparsity_figures():
    h100 = GPUS["H100"]
    assert h100.peaks["fp16"] == pytest.approx(1979e12 / 2) and h100.peaks["tf32"] == pytest.approx(989e12 / 2)
    assert h100.hbm_bandwidth == pytest.approx(3.35e12) and h100.sms == 132 and h100.l2_bytes == 50 << 20
    assert GPUS["H200"].peaks == h100.peaks and GPUS["H200"].hbm_bandwidth > h100.hbm_bandwidth


def test_a_precision_a_part_lacks_runs_at_the_next_wider_one():
    a100 = GPUS["A100"]
    assert "fp8" not in a100.peaks and a100.peak("fp8") == a100.peaks["fp16"]
    assert a100.peak("tf32") == 156e12


def test_memory_bound_work_follows_bandwidth_across_parts():
    copy = [{"kind": "torch", "name": "aten.clone.default", "category": "glue", "op_class": "copy", "flops": 0,
             "bytes_read": 1 << 30, "bytes_written": 1 << 30, "dtype": "float32", "precision": "fp32", "count": 1}]
    times = {name: price(copy, name).runtime_us for name in GPUS}
    assert sorted(times, key=times.get) == sorted(GPUS, key=lambda n: -GPUS[n].hbm_bandwidth)
