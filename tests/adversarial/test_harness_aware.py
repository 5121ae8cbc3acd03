"""Attacks that exploited what is now gone gain nothing (the caught ones are in test_catalogue)."""

import pytest
from hack_submissions import CONTENT_CACHE
from harness_aware_submissions import NEUTRALISED, Neutralised
from helpers import relu_model, reply
from naive_harness import naive_harness

CASES = [*NEUTRALISED, Neutralised(6, "cache-by-sampled-contents", "matmul", reply(CONTENT_CACHE), "no_gain",
                                   reply(CONTENT_CACHE.replace("if key in self.cache:", "if False:")))]
#: A trick that worked would report a quarter of the honest time or less; timing noise on a loaded
#: machine stays well inside a factor of two of it.
NO_GAIN_RATIO = 0.5


@pytest.fixture(scope="module")
def results(evaluator, tasks):
    jobs = [(tasks[c.task], c.response) for c in CASES] + [(tasks[c.task], c.honest) for c in CASES if c.honest]
    out = evaluator.map(jobs)
    honest = iter(out[len(CASES):])
    return {c.id: (r, next(honest) if c.honest else None) for c, r in zip(CASES, out)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_attack_passes_a_naive_harness(case, tasks):
    assert naive_harness(tasks[case.task], case.response)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_attack_gains_nothing(case, results):
    r, honest = results[case.id]
    if case.outcome == "incorrect":
        assert not r.correct and r.error.startswith("incorrect"), (r.hacks, r.error)
    elif case.outcome == "refused":
        assert r.stage == "compile" and not r.compiled and "the GPU compiler rejects" in r.error, (r.stage, r.error)
    else:
        assert r.clean and honest.clean, (r.hacks, r.error, honest.hacks, honest.error)
        assert r.runtime_ms >= NO_GAIN_RATIO * honest.runtime_ms, (r.runtime_ms, honest.runtime_ms)
    assert r.inputs == "secret"


REPLAY_DETECTOR = relu_model('''out = torch.full_like(x, 7.0)  # a sentinel: a skipped kernel leaves it in place
relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
if bool((out == 7.0).all()):
    raise RuntimeError("a replay: bail out before it can judge the output")
return out''')


def test_a_replay_that_raises_only_when_kernels_are_skipped_is_evidence(evaluator, tasks):
    """Row 8 of the integrity build: code that notices the replay and raises escapes the verdict of
    the replay, so the raise itself is reported (and a code under strict)."""
    from kernel_env import EvalConfig

    loose = evaluator.evaluate(tasks["relu"], REPLAY_DETECTOR)
    assert loose.correct and any("ghost replay raised" in f for f in loose.findings), loose.findings
    strict = evaluator.evaluate(tasks["relu"], REPLAY_DETECTOR, config=EvalConfig(strict=True))
    assert "kernel_not_contributing" in strict.hacks
