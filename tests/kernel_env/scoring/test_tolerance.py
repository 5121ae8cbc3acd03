"""Tolerance presets: figures by dtype, hand-set overrides named "custom", and the scale-aware cap."""

import pytest
import torch

from kernel_env import EvalConfig
from kernel_env.scoring.tolerance import DEFAULT_PRESET, Tolerance, compare, dtype_name


def test_presets_give_the_published_figures():
    assert DEFAULT_PRESET == "drkernel" and EvalConfig().tol == Tolerance(1e-2, 1e-2, "drkernel", "fp32", True)
    assert Tolerance.resolve("kernelbench", "fp32") == Tolerance(1e-4, 1e-4, "kernelbench", "fp32")
    assert Tolerance.resolve("kernelbench", "bfloat16") == Tolerance(1e-2, 1e-2, "kernelbench", "bf16")
    assert Tolerance.resolve("drkernel", "half").dtype == "fp16"


def test_a_hand_set_figure_is_custom_and_a_preset_figure_is_not():
    assert EvalConfig(atol=0.1, rtol=0.0).tol == Tolerance(0.1, 0.0, "custom", "fp32", scale_aware=False)
    assert EvalConfig(atol=0.1, rtol=0.0).tol.atol_for(torch.full((4,), 1e-3)) == 0.1  # taken as given
    assert EvalConfig(atol=1e-2).tol.preset == "custom"  # even the preset's own figure, when set by hand
    assert EvalConfig(tolerance="kernelbench", dtype="bf16").tol.atol == 1e-2


def test_unknown_names_fail_at_construction():
    with pytest.raises(ValueError, match="unknown tolerance preset"):
        EvalConfig(tolerance="loose")
    with pytest.raises(ValueError, match="unknown dtype"):
        EvalConfig(dtype="fp8")
    with pytest.raises(ValueError, match="non-negative"):
        EvalConfig(atol=-1)
    assert EvalConfig(dtype="bfloat16").dtype == "bf16" and dtype_name("float32") == "fp32"


def test_the_absolute_tolerance_is_capped_by_the_output_scale():
    tol = Tolerance.resolve("drkernel", "fp32")
    probabilities = torch.softmax(torch.randn(4, 16384), dim=-1)  # ~6e-5 per entry, all below atol
    assert torch.allclose(torch.zeros_like(probabilities), probabilities, atol=1e-2, rtol=1e-2)  # the naive check
    assert tol.atol_for(probabilities) < 1e-5
    zeros = compare([torch.zeros_like(probabilities)], [probabilities], tol)
    assert not zeros.ok and "capped by the output's scale" in zeros.why
    assert compare([probabilities * (1 + 1e-3)], [probabilities], tol).ok  # a right answer still passes


def test_the_cap_leaves_unit_scale_outputs_alone():
    tol = Tolerance.resolve("drkernel", "fp32")
    x = 2 * torch.randn(64, 64, generator=torch.Generator().manual_seed(0))  # RMS about 2: above 1
    assert tol.atol_for(x) == tol.atol
    assert compare([x + 5e-3], [x], tol).ok and not compare([x + 5e-2], [x], tol).ok
    assert tol.atol_for(torch.zeros(8)) == tol.atol  # an all-zero reference keeps the preset's figure


def test_kernelbench_is_stricter_at_float32():
    x = torch.randn(256)
    off = x * (1 + 1e-3)  # TF32-like rounding
    assert compare([off], [x], Tolerance.resolve("drkernel", "fp32")).ok
    assert not compare([off], [x], Tolerance.resolve("kernelbench", "fp32")).ok


def test_a_near_miss_is_told_apart_from_a_different_answer():
    tol = Tolerance.resolve("drkernel", "fp32")
    x = 4 * torch.randn(4096, generator=torch.Generator().manual_seed(1))
    rounding = x.clone()
    rounding[7] += 3 * (tol.atol + tol.rtol * x[7].abs())  # one element a few tolerances off
    near = compare([rounding], [x], tol)
    assert not near.ok and near.near_miss and 2.9 < near.excess < 3.1
    assert not compare([x + 2.0], [x], tol).near_miss  # every element off: a different answer
    assert not compare([x[:10]], [x], tol).near_miss  # a wrong shape is as far off as it gets
