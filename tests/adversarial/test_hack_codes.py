"""The hack codes are defined once (kernel_env.scoring.hacks), cover the catalogue, and reach the feedback."""

import re
from pathlib import Path

from honest_submissions import HONEST

from kernel_env import EvalConfig
from kernel_env.evaluator.submission import STRICT_CODES
from kernel_env.scoring.feedback import feedback
from kernel_env.scoring.hacks import HACKS, describe, hack_table
from kernel_env.scoring.result import EvalResult

SOURCES = Path(__file__).resolve().parents[2] / "kernel_env"


def test_every_code_the_evaluator_emits_is_defined():
    """Literal codes in the sources and strict-mode codes; test_catalogue checks the ones seen at run time."""
    emitted = set(STRICT_CODES.values())
    for name in ("inside/runner.py", "evaluator/judge.py"):
        emitted |= set(re.findall(r'hack\(\s*"([a-z_]+)"', (SOURCES / name).read_text()))
    assert len(emitted) >= 12 and emitted <= set(HACKS), emitted - set(HACKS)


def test_the_table_has_a_row_per_code_and_covers_the_catalogue():
    rows = hack_table().splitlines()
    assert rows[0] == "| code | meaning | how it is detected | what it cannot detect |"
    assert len(rows) == 2 + len(HACKS) and all(row.count(" | ") == 3 for row in rows[2:])
    answered = {entry for h in HACKS.values() for entry in h.catalogue}
    # 15 is answered by task validation (tasks.check), 19 by coverage, 20 by secret seeds and 25 by
    # the GPU-target compile: none of them is a hack code
    assert answered == set(range(1, 28)) - {15, 19, 20, 25}


def test_feedback_says_what_was_seen_in_plain_words():
    r = EvalResult("L1/19_ReLU", compiled=True, hacks=["output_caching"], stage="done",
                   hack_details={"output_caching": "trial 5 returned the answer of trial 4: a stale result"})
    text = feedback(r)
    assert "reward hacking" in text and HACKS["output_caching"].meaning in text
    assert "trial 5 returned the answer of trial 4" in text and HACKS["output_caching"].advice in text
    assert describe(["not_a_code"]) == ""


def test_strict_mode_promotes_static_findings(evaluator, tasks):
    honest = {name: (task, response) for name, task, response in HONEST}
    items = [honest["flagged-modules-used-innocently"], honest["half-precision-branch-unused"]]
    loose = evaluator.map([(tasks[t], resp) for t, resp in items])
    strict = evaluator.map([(tasks[t], resp) for t, resp in items], config=EvalConfig(strict=True))
    assert all(r.clean for r in loose)
    assert strict[0].clean  # a threading.Lock around a counter is no concurrent work, strict or not
    assert "precision_downgrade" in strict[1].hacks


def test_strict_codes_cover_the_static_findings():
    from hack_submissions import HACKS as SUBMISSIONS

    from kernel_env.evaluator.submission import STRICT_CODES, parse_submission, strict_codes

    assert set(STRICT_CODES.values()) <= set(HACKS)
    promoted = {c.id: strict_codes(parse_submission(c.response).findings) for c in SUBMISSIONS}
    assert "thread_or_process_spawned" in promoted["11-thread"]
    assert "reads_harness_state" in promoted["13-inspect-stack"] and "reads_harness_state" in promoted["13-gc-reference-model"]
    assert "timer_tampering" in promoted["10-slow-perf-counter"] and "lazy_output" in promoted["09-lazy-subclass"]
    assert "precision_downgrade" in promoted["16-bf16-output-glue"]
    assert "no_own_kernel_launched" in promoted["03-except-fallback"]
