"""Which speedup the reward pays (modelled on the interpreter, measured on CUDA) and how feedback says it."""

import math

import pytest

from kernel_env import EvalResult, RewardConfig
from kernel_env.scoring.feedback import feedback
from kernel_env.scoring.rewards import PRESETS, chosen_speedup, speed_source


def _modelled(speedup=2.0, flags=()) -> dict:
    rows = [{"name": name, "kind": "kernel", "flops": 1e6, "bytes": 4e6, "us": us, "bound": "memory", "count": count,
             "detail": {}} for name, us, count in (("relu_kernel", 40.0, 1), ("add_kernel", 5.0, 3),
                                                   ("torch.mul", 2.5, 1), ("tiny_kernel", 1.0, 1))]
    ref = [{"name": "aten::relu", "kind": "torch", "flops": 0.0, "bytes": 8e6, "us": 48.5 * speedup / 2.0,
            "bound": "memory", "count": 1, "detail": {}}]
    return {"gpu": "H100", "runtime_us": 48.5, "ref_runtime_us": 48.5 * speedup, "speedup": speedup,
            "bound": "memory", "flags": list(flags), "rows": rows, "ref_rows": ref}


def _result(backend="interpreter", modelled=None, **kw) -> EvalResult:
    base = {"task_id": "L1/19_ReLU", "backend": backend, "compiled": True, "correct": True, "speedup": 0.001,
            "runtime_ms": 120.0, "ref_runtime_ms": 0.12, "coverage": 0.9, "stage": "done", "modelled": modelled}
    return EvalResult(**{**base, **kw})


# -- the choice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend, speed, has_model, source", [
    ("interpreter", "auto", True, "modelled"),
    ("cuda", "auto", True, "measured"),
    ("interpreter", "auto", False, "measured"),
    ("cuda", "modelled", True, "modelled"),
    ("cuda", "modelled", False, "measured"),  # no model: falls back to the measurement
    ("interpreter", "measured", True, "measured"),
])
def test_speed_source(backend, speed, has_model, source):
    r = _result(backend, _modelled() if has_model else None)
    assert speed_source(r, speed) == source
    assert chosen_speedup(r, speed) == (2.0 if source == "modelled" else 0.001)


def test_every_preset_pays_the_chosen_speed():
    interp, cuda = _result("interpreter", _modelled(2.0)), _result("cuda", _modelled(2.0), speedup=1.5)
    expected = {"drkernel": lambda s: 1 + s + 0.9, "correctness": lambda s: 1.0, "speedup": lambda s: s,
                "log_speedup": lambda s: math.log2(1 + s)}
    assert set(expected) == set(PRESETS)
    for preset, formula in expected.items():
        assert RewardConfig(preset)(interp) == pytest.approx(formula(2.0))
        assert RewardConfig(preset)(cuda) == pytest.approx(formula(1.5))
        assert RewardConfig(preset, speed="measured")(interp) == pytest.approx(formula(0.001))
        assert RewardConfig(preset, speed="modelled")(cuda) == pytest.approx(formula(2.0))


def test_the_modelled_speed_is_capped_and_the_gate_is_unchanged():
    assert RewardConfig("speedup")(_result(modelled=_modelled(10.0))) == pytest.approx(3.0)
    config = RewardConfig(hack_value=-1.0, failure_value=-0.5)
    assert config(_result(modelled=_modelled(10.0), hacks=["output_caching"])) == -1.0
    assert config(_result(modelled=_modelled(10.0), correct=False, stage="correctness")) == -0.5


def test_speed_is_validated_and_presets_by_name_still_work():
    with pytest.raises(ValueError, match="unknown speed"):
        RewardConfig(speed="fastest")
    with pytest.raises(ValueError, match="unknown speed"):
        speed_source(_result(), "fastest")
    assert RewardConfig.of("speedup") == RewardConfig("speedup", speed="auto")
    assert RewardConfig.of("speedup").with_(speed="measured").speed == "measured"


# -- feedback -----------------------------------------------------------------------------------------

def test_feedback_on_the_interpreter_leads_with_the_model():
    text = feedback(_result(modelled=_modelled(2.0, flags=["work_scaled"])))
    assert text.startswith("Your kernel is correct. Modelled on H100 (a roofline model from the work your kernels "
                           "did, not a measurement): 48.5 us vs reference 97.0 us, speedup 2.00x, memory-bound.")
    assert "Model flags: work_scaled." in text
    assert "Measured under the Triton interpreter on CPU (not a GPU figure): 120.000 ms vs 0.120 ms." in text
    assert ("Heaviest of yours (modelled): relu_kernel 40.0 us (memory); add_kernel x3 5.0 us (memory); "
            "torch.mul 2.5 us (memory).") in text
    assert "tiny_kernel" not in text and "speedup 0.00x" not in text
    assert text.endswith("Make it faster if you can, keeping it correct.")


def test_feedback_on_cuda_leads_with_the_measurement():
    text = feedback(_result("cuda", _modelled(2.0), speedup=1.5, runtime_ms=0.08))
    assert text.startswith("Your kernel is correct. Runtime 0.080 ms vs reference 0.120 ms: speedup 1.50x.")
    assert text.index("Runtime") < text.index("Modelled on H100") < text.index("Heaviest")


def test_feedback_without_a_model_is_as_before():
    assert feedback(_result(speedup=None, runtime_ms=None, ref_runtime_ms=None)) == "Your kernel is correct."
    text = feedback(_result(coverage=0.2))
    assert text == ("Your kernel is correct. Runtime 120.000 ms vs reference 0.120 ms: speedup 0.00x (Triton "
                    "interpreter timing on CPU, not a GPU figure). 20% of the time is spent in your own kernels. "
                    "Most time is outside your kernels: move the heavy operations into Triton. "
                    "Make it faster if you can, keeping it correct.")


def test_feedback_for_failures_ignores_the_model():
    hacked = feedback(_result(modelled=_modelled(), hacks=["output_caching"], correct=True))
    assert hacked.startswith("Your submission was rejected") and "Modelled" not in hacked
    wrong = feedback(_result(modelled=_modelled(), correct=False, stage="correctness", error="incorrect: max err 1"))
    assert wrong == "Your output is incorrect: max err 1. Fix the kernel and answer again."


def test_feedback_keeps_the_evaluated_block_note():
    r = _result(modelled=_modelled(), findings=["evaluated code block 2 of 2"])
    assert feedback(r).startswith("(Evaluated code block 2 of 2.) Your kernel is correct. Modelled on H100")
