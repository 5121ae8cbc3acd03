"""The result record: versioned, structured hack details, one constructor for harness failures."""

from kernel_env import EvalResult
from kernel_env.scoring.feedback import feedback
from kernel_env.scoring.result import NOT_YOUR_FAULT, SCHEMA_VERSION
from kernel_env.scoring.rewards import RewardConfig


def test_to_dict_carries_the_schema_version_and_round_trips():
    r = EvalResult("L1/19_ReLU", hacks=["output_caching"], hack_details={"output_caching": "trial 5 was stale"})
    d = r.to_dict()
    assert d["schema_version"] == SCHEMA_VERSION == 5 and EvalResult.from_dict(d) == r


def test_a_first_release_record_still_loads():
    v1 = {"task_id": "L1/19_ReLU", "correct": True, "stage": "done", "findings": [], "hacks": [],
          "speedup": 1.5, "not_a_field_any_more": 3}
    r = EvalResult.from_dict(v1)
    assert r.correct and r.speedup == 1.5 and r.hack_details == {} and not r.harness_error
    assert r.schema_version == SCHEMA_VERSION


def test_harness_failures_say_so_and_earn_the_failure_value():
    r = EvalResult.harness_failure("L1/19_ReLU", "the evaluator actor died", backend="cuda", size="full")
    assert r.harness_error and r.feedback == NOT_YOUR_FAULT == feedback(r) and r.error == "the evaluator actor died"
    assert (r.backend, r.size, r.stage) == ("cuda", "full", "compile")
    assert RewardConfig(failure_value=-1.0)(r) == -1.0


def test_hack_details_reach_the_feedback_without_parsing_text():
    r = EvalResult("L1/19_ReLU", compiled=True, hacks=["input_mutation", "output_caching"], stage="done",
                   findings=["reads data_ptr(): may key a cache on tensor identity"],
                   hack_details={"input_mutation": "input(s) [0] changed by forward in trial 2"})
    text = feedback(r)
    assert "(seen: input(s) [0] changed by forward in trial 2)" in text
    assert "data_ptr" not in text  # findings are evidence, not what the feedback reports as seen
