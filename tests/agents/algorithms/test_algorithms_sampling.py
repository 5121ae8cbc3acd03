import random

import pytest
import torch

from agents.algorithms import (
    ADVANTAGE_ESTIMATORS,
    ScoredSample,
    balanced_downsample,
    exit_rule_holds,
    reinforce_ada,
)


class ScriptedSampler:
    """generate_and_score stand-in: per task, a function (round, index within round) -> reward.

    Records which tasks were asked for in each call and how many samples each task received.
    """

    def __init__(self, scripts):
        self.scripts = scripts
        self.calls: list[list] = []
        self.drawn = {task: 0 for task in scripts}

    def __call__(self, task_ids, k):
        round_ = len(self.calls)
        self.calls.append(list(task_ids))
        out = []
        for task in task_ids:
            out.extend(ScoredSample(self.scripts[task](round_, j), data=(task, round_, j)) for j in range(k))
            self.drawn[task] += k
        return out


def test_positive_exit_stops_each_task_after_its_first_positive_round():
    sampler = ScriptedSampler(
        {
            "easy": lambda r, j: 1.0,  # positive in round 0
            "late": lambda r, j: 1.0 if (r, j) == (2, 5) else 0.0,  # one positive in round 2
            "hard": lambda r, j: 0.0,  # never positive
            "edge": lambda r, j: 0.7,  # at the threshold: not positive
        }
    )
    result = reinforce_ada(["easy", "late", "hard", "edge"], sampler, n=4, m=8, max_rounds=4, rng=random.Random(0))
    assert sampler.calls == [
        ["easy", "late", "hard", "edge"],
        ["late", "hard", "edge"],
        ["late", "hard", "edge"],
        ["hard", "edge"],
    ]
    assert result.rounds == 4
    assert sampler.drawn == {"easy": 8, "late": 24, "hard": 32, "edge": 32}
    assert {t: s.n_samples for t, s in result.stats.items()} == sampler.drawn
    assert {t: s.exited for t, s in result.stats.items()} == {"easy": True, "late": True, "hard": False, "edge": False}
    assert {t: len(g) for t, g in result.kept.items()} == {"easy": 4, "late": 4, "hard": 4, "edge": 4}
    # the one positive of "late" is kept, with 3 negatives
    assert sorted(s.reward for s in result.kept["late"]) == [0.0, 0.0, 0.0, 1.0]
    # global statistics are over everything collected, not the kept group
    assert result.baseline_means["late"] == pytest.approx(1 / 24)
    assert result.stats["late"].n_positive == 1


def test_balanced_exit_needs_both_classes():
    sampler = ScriptedSampler(
        {
            "mixed": lambda r, j: float(j % 2),  # 4 positives and 4 negatives in round 0
            "solved": lambda r, j: 1.0,  # never any negative
            "turns": lambda r, j: 1.0 if r >= 1 and j < 2 else 0.0,  # 2 positives first appear in round 1
        }
    )
    result = reinforce_ada(["mixed", "solved", "turns"], sampler, n=4, m=8, max_rounds=3, exit="balanced")
    assert sampler.calls == [["mixed", "solved", "turns"], ["solved", "turns"], ["solved"]]
    assert sampler.drawn == {"mixed": 8, "solved": 24, "turns": 16}
    assert not result.stats["solved"].exited
    assert sorted(s.reward for s in result.kept["turns"]) == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("exit", ["positive", "balanced"])
@pytest.mark.parametrize("seed", range(5))
def test_random_tasks_stop_as_soon_as_the_rule_holds_and_stay_within_budget(exit, seed):
    rng = random.Random(seed)
    n, m, max_rounds, threshold = 4, 3, 5, 0.7
    success = {f"t{i}": rng.random() for i in range(12)}
    history = {task: [] for task in success}

    def generate_and_score(task_ids, k):
        out = []
        for task in task_ids:
            batch = [ScoredSample(1.0 if rng.random() < success[task] else 0.0) for _ in range(k)]
            history[task].append(batch)
            out.extend(batch)
        return out

    result = reinforce_ada(list(success), generate_and_score, n=n, m=m, max_rounds=max_rounds, exit=exit, rng=rng)
    for task, rounds in history.items():
        assert sum(len(b) for b in rounds) <= max_rounds * m
        flat = [[s.reward > threshold for s in batch] for batch in rounds]
        holds_after = [
            exit_rule_holds(sum(map(sum, flat[: i + 1])), sum(len(b) - sum(b) for b in flat[: i + 1]), n=n, exit=exit)
            for i in range(len(flat))
        ]
        # sampled again only while the rule did not hold; stopped at the first round where it did
        assert not any(holds_after[:-1])
        assert holds_after[-1] or len(rounds) == max_rounds
        assert result.stats[task].exited == holds_after[-1]
        assert len(result.kept[task]) == min(n, len(rounds) * m)


@pytest.mark.parametrize(
    "n_pos, n_neg, n, expected",
    [
        (10, 10, 4, (2, 2)),
        (1, 10, 4, (1, 3)),
        (10, 1, 4, (3, 1)),
        (2, 1, 4, (2, 1)),
        (0, 8, 4, (0, 4)),
        (5, 5, 5, (3, 2)),
        (5, 1, 5, (4, 1)),
    ],
)
def test_balanced_downsample_counts(n_pos, n_neg, n, expected):
    samples = [ScoredSample(1.0)] * n_pos + [ScoredSample(0.0)] * n_neg
    random.Random(0).shuffle(samples)
    kept = balanced_downsample(samples, n, threshold=0.7, rng=random.Random(1))
    assert (sum(s.reward > 0.7 for s in kept), sum(s.reward <= 0.7 for s in kept)) == expected


def test_flatten_feeds_the_global_mean_estimator():
    sampler = ScriptedSampler({"a": lambda r, j: float(j == 0), "b": lambda r, j: 0.5 * (r == 1)})
    result = reinforce_ada(["a", "b"], sampler, n=2, m=4, max_rounds=2, rng=random.Random(3))
    samples, rewards, group_ids, baselines = result.flatten()
    assert [s.data[0] for s in samples] == ["a", "a", "b", "b"]
    assert group_ids.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(baselines, torch.tensor([0.25, 0.25, 0.25, 0.25]))
    adv = ADVANTAGE_ESTIMATORS["global_mean"](rewards, group_ids=group_ids, baseline_means=baselines)
    torch.testing.assert_close(adv, rewards - 0.25)


def test_bad_inputs_fail_loudly():
    with pytest.raises(ValueError, match="returned"):
        reinforce_ada(["a"], lambda ids, k: [ScoredSample(1.0)], m=2)
    with pytest.raises(ValueError, match="unique"):
        reinforce_ada(["a", "a"], ScriptedSampler({"a": lambda r, j: 1.0}))
    with pytest.raises(ValueError, match="exit"):
        reinforce_ada(["a"], ScriptedSampler({"a": lambda r, j: 1.0}), exit="first")
