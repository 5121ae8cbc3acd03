"""The model checked against a GPU: rank correlation and the constants a measurement suggests."""

import pytest

from kernel_env.perf.calibrate import Pair, calibration, ranks, spearman
from kernel_env.perf.roofline import MEMORY_EFFICIENCY
from kernel_env.scoring.result import EvalResult


def test_ranks_share_ties():
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_spearman_on_hand_computed_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = (0, 1, -1, 0): 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # Wikipedia's example (IQ against hours of TV): sum of squared rank differences 194, n = 10
    iq = [106, 86, 100, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 0, 27, 50, 28, 29, 20, 12, 6, 17]
    assert spearman(iq, tv) == pytest.approx(1 - 6 * 194 / (10 * 99))
    # ties: y ranks 1, 2, 3.5, 5, 3.5 against 1..5, Pearson's r of the ranks is 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / 95 ** 0.5)
    assert spearman([1, 2], [2, 1]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_a_memory_bound_suite_measured_slower_suggests_a_lower_efficiency():
    pairs = [Pair(f"t{i}", measured_us=12.0 * (i + 1), modelled_us=10.0 * (i + 1), measured_speedup=1.0 + i,
                  modelled_speedup=1.1 + i, bound="memory") for i in range(4)]
    report = calibration(pairs)
    assert report["n"] == 4 and report["speedup_rank_correlation"] == pytest.approx(1.0)
    assert report["median_ratio"] == pytest.approx(1.2) and report["log_ratio_spread"] == pytest.approx(0.0, abs=1e-12)
    suggested = report["by_bound"]["memory"]["suggested"]
    assert suggested == {"MEMORY_EFFICIENCY": round(MEMORY_EFFICIENCY / 1.2, 3), "now": MEMORY_EFFICIENCY}


def test_a_pair_needs_both_sides():
    measured_only = EvalResult(task_id="t", speedup=1.5, runtime_ms=0.1)
    assert Pair.of(measured_only) is None
    both = EvalResult(task_id="t", speedup=1.5, runtime_ms=0.1,
                      modelled={"runtime_us": 80.0, "speedup": 1.2, "bound": "launch"})
    assert Pair.of(both) == Pair("t", 100.0, 80.0, 1.5, 1.2, "launch")
    assert "suggested" not in calibration([Pair.of(both)])["by_bound"]["launch"]
