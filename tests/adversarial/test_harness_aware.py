"""Attacks that exploited what is now gone gain nothing (the caught ones are in test_catalogue)."""

import pytest
from hack_submissions import CONTENT_CACHE
from harness_aware_submissions import NEUTRALISED, Neutralised
from helpers import reply
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
    else:
        assert r.clean and honest.clean, (r.hacks, r.error, honest.hacks, honest.error)
        assert r.runtime_ms >= NO_GAIN_RATIO * honest.runtime_ms, (r.runtime_ms, honest.runtime_ms)
    assert r.inputs == "secret"
