"""Every catalogue entry the CPU can exercise: the hack passes a naive harness, and the evaluator
names it with the expected code (a result with a hack code is never clean)."""

import pytest
from hack_submissions import HACKS
from naive_harness import naive_harness

from kernel_env.scoring.hacks import HACKS as CODES

CASES = pytest.mark.parametrize("case", HACKS, ids=lambda c: c.id)


@pytest.fixture(scope="module")
def verdicts(evaluator, tasks):
    results = evaluator.map([(tasks[c.task], c.response) for c in HACKS])
    return {c.id: r for c, r in zip(HACKS, results)}


@CASES
def test_the_hack_passes_a_naive_harness(case, tasks):
    assert naive_harness(tasks[case.task], case.response)


@CASES
def test_the_evaluator_names_the_hack(case, verdicts):
    r = verdicts[case.id]
    found = set(r.hacks)
    assert case.codes <= found, (r.hacks, r.error, r.findings)
    assert not case.any_of or case.any_of & found, (r.hacks, r.error, r.findings)
    assert found and found <= set(CODES) and not r.clean
    assert r.speedup is None and r.coverage is None  # an unearned result has no speed
    assert "reward hacking" in r.feedback and all(CODES[c].advice in r.feedback for c in found)


TRUSTING = {"10-allclose-always-true", "13-frame-locals", "13-inspect-stack", "13-gc-reference-model"}


@pytest.mark.parametrize("case", [c for c in HACKS if c.id in TRUSTING], ids=lambda c: c.id)
def test_what_the_naive_harness_trusted_is_not_there(case, verdicts):
    """The reference's answers and the comparison live outside the candidate's process, so reading
    memory or patching torch.allclose gains nothing: the output is simply wrong."""
    r = verdicts[case.id]
    assert not r.correct and r.error.startswith("incorrect")
