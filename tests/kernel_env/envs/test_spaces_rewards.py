"""The text space and the reward presets, on synthetic results (no evaluation needed)."""

import math
import pickle

import numpy as np
import pytest
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from kernel_env import EvalResult, RewardConfig, TextSpace
from kernel_env.scoring.rewards import PRESETS


def test_text_space_accepts_any_string_up_to_its_length():
    space = TextSpace(max_length=20)
    for text in ["", " ", "a b\nc\t", "ünïcödé ✓ 中文", "```python\nx=1\n```", "x" * 20]:
        assert space.contains(text) and text in space
    assert "x" * 21 not in space
    for other in [None, b"bytes", 3, ["a"], np.array(["a"])]:
        assert other not in space


def test_text_space_sample_is_seeded_and_inside():
    a, b = TextSpace(1000, seed=7), TextSpace(1000, seed=7)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(s in a and len(s) <= a.sample_length for s in samples)
    assert len(set(samples)) > 1


def test_text_space_pickles_and_batches():
    space = TextSpace(50, seed=1)
    back = pickle.loads(pickle.dumps(space))
    assert back == space and back.sample() == space.sample()
    batched = batch_space(space, 3)  # Gymnasium batches custom spaces as a Tuple of copies
    assert len(batched.spaces) == 3 and all(s == space for s in batched.spaces)
    assert ("a", "b\n", "") in batched and ("a", 1, "") not in batched
    assert concatenate(space, ["a", "b"], create_empty_array(space, 2)) == ("a", "b")


def _result(**kw) -> EvalResult:
    base = {"task_id": "L1/x", "compiled": True, "correct": True, "speedup": 1.5, "coverage": 0.8, "stage": "done"}
    return EvalResult(**{**base, **kw})


@pytest.mark.parametrize("preset, expected", [
    ("drkernel", 1 + 1.5 + 0.8),
    ("correctness", 1.0),
    ("speedup", 1.5),
    ("log_speedup", math.log2(2.5)),
])
def test_presets_on_a_clean_result(preset, expected):
    assert RewardConfig(preset)(_result()) == pytest.approx(expected)


def test_speedup_is_capped_and_missing_figures_count_as_zero():
    assert RewardConfig()(_result(speedup=10.0, coverage=1.0)) == pytest.approx(1 + 3 + 1)
    assert RewardConfig(speedup_cap=5.0)(_result(speedup=10.0, coverage=1.0)) == pytest.approx(1 + 5 + 1)
    assert RewardConfig("log_speedup")(_result(speedup=3.0)) == pytest.approx(2.0)
    assert RewardConfig()(_result(speedup=None, coverage=None)) == pytest.approx(1.0)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_pays_hack_and_failure_values(preset):
    config = RewardConfig(preset, hack_value=-1.0, failure_value=-0.5)
    assert config(_result(hacks=["output_caching"])) == -1.0
    assert config(_result(correct=True, hacks=["no_own_kernel_launched"], speedup=None)) == -1.0
    assert config(_result(correct=False, speedup=None, coverage=None)) == -0.5
    assert config(_result(compiled=False, correct=False, stage="compile", speedup=None)) == -0.5
    assert config(_result()) > -0.5  # a correct kernel always beats a failure, however slow


def test_custom_callables_see_everything_but_hacks():
    def partial_credit(r: EvalResult) -> float:
        return 0.1 if r.compiled and not r.correct else (1.0 if r.correct else 0.0)

    config = RewardConfig.of(partial_credit)
    assert config.name == "partial_credit"
    assert config(_result(correct=False)) == 0.1
    assert config(_result()) == 1.0
    assert config(_result(hacks=["input_mutation"])) == 0.0
    assert RewardConfig.of(lambda r: 7)(_result(hacks=["input_mutation"])) == 0.0


def test_reward_config_of_accepts_names_configs_and_rejects_the_rest():
    assert RewardConfig.of("speedup") == RewardConfig("speedup")
    cfg = RewardConfig("correctness", hack_value=-2)
    assert RewardConfig.of(cfg) is cfg and RewardConfig.of(None) == RewardConfig()
    assert cfg.with_(hack_value=-3).hack_value == -3
    with pytest.raises(ValueError, match="unknown reward preset"):
        RewardConfig.of("fastest")
    with pytest.raises(TypeError):
        RewardConfig.of(3)
