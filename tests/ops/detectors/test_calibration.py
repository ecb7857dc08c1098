"""HTM's anomaly likelihood, on hand-computed cases: the Gaussian tail, NAB's log scaling, and
``Likelihood``'s warm-up, short and long windows, deviation floor and gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amml.ops.detectors.calibration import Likelihood, gaussian_tail, log_likelihood_score


def _expected(recent: float, history: list[float], min_std: float = 1e-4) -> float:
    """The score of ``recent`` against ``history``, from the formulas of the module docstring."""
    mean = float(np.mean(history))
    std = max(float(np.std(history)), min_std)
    tail = 0.5 * math.erfc((recent - mean) / std / math.sqrt(2))
    return min(max(math.log(1.0000000001 - (1 - tail)) / math.log(1e-10), 0.0), 1.0)


def test_gaussian_tail_is_the_upper_tail_of_a_standard_normal():
    assert gaussian_tail(0.0) == 0.5
    assert gaussian_tail(1.6448536269514722) == pytest.approx(0.05, rel=1e-12)
    assert gaussian_tail(-1.959963984540054) == pytest.approx(0.975, rel=1e-12)
    assert gaussian_tail(40.0) == 0.0 and gaussian_tail(-40.0) == 1.0


def test_log_scaling_spreads_likelihoods_over_zero_to_one():
    assert log_likelihood_score(0.0) == 0.0  # not below 0
    assert log_likelihood_score(0.5) == pytest.approx(math.log(0.5) / math.log(1e-10))
    assert log_likelihood_score(1 - 1e-5) == pytest.approx(0.5, abs=1e-6)  # one in 100,000
    assert log_likelihood_score(1.0) == pytest.approx(1.0, abs=1e-8)  # a certainty
    assert log_likelihood_score(1.0 + 1e-12) == 1.0  # not more


def test_nothing_is_scored_during_the_warm_up():
    calibrate = Likelihood(warmup=3)
    scores = [calibrate.update(float(x)) for x in (1, 2, 1, 2, 1)]
    assert np.isnan(scores[:3]).all() and np.isfinite(scores[3:]).all()
    default = Likelihood()  # 32 rows of warm-up by default
    scores = [default.update(float(x % 3)) for x in range(34)]
    assert np.isnan(scores[:32]).all() and np.isfinite(scores[32:]).all()


def test_scoring_needs_two_earlier_raw_scores():
    calibrate = Likelihood(warmup=0)
    scores = [calibrate.update(x) for x in (1.0, 3.0, 2.0)]
    assert np.isnan(scores[:2]).all()
    assert scores[2] == pytest.approx(_expected(2.0, [1.0, 3.0]), rel=1e-12)


def test_a_raw_score_is_compared_with_the_long_window_before_it():
    calibrate = Likelihood(long=4, warmup=0)
    for x in (9.0, 9.0, 0.0, 2.0, 0.0, 2.0):  # the 9s have left the window of four
        calibrate.update(x)
    assert calibrate.update(3.0) == pytest.approx(_expected(3.0, [0, 2, 0, 2]), rel=1e-12)
    # 3.0 joined the window only after it was scored
    assert calibrate.update(3.0) == pytest.approx(_expected(3.0, [2, 0, 2, 3]), rel=1e-12)


def test_the_default_long_window_is_2000_raw_scores():
    calibrate = Likelihood()
    history = [50.0] * 100 + [0.0, 2.0] * 1000
    for x in history:
        calibrate.update(x)
    assert calibrate.update(3.0) == pytest.approx(_expected(3.0, history[-2000:]), rel=1e-12)


def test_the_short_window_averages_the_latest_raw_scores():
    calibrate = Likelihood(short=3, long=6, warmup=0)
    for x in (0.0, 2.0, 0.0, 2.0, 0.0, 2.0):
        calibrate.update(x)
    # the mean of 0, 2 and 4 (the raw score just given) against the six before
    assert calibrate.update(4.0) == pytest.approx(_expected(2.0, [0, 2] * 3), rel=1e-12)


@pytest.mark.parametrize("min_std", [1e-4, 0.5])
def test_a_constant_history_has_a_floor_under_its_deviation(min_std):
    calibrate = Likelihood(warmup=0) if min_std == 1e-4 else Likelihood(warmup=0,
                                                                         min_std=min_std)
    for _ in range(10):
        calibrate.update(1.0)
    # one floor above the constant: z = 1, not a certainty
    assert calibrate.update(1.0 + min_std) == pytest.approx(
        log_likelihood_score(1 - gaussian_tail(1.0)), rel=1e-6)


def test_a_raw_score_that_is_not_finite_counts_as_zero():
    gaps, zeros = Likelihood(warmup=0), Likelihood(warmup=0)
    for raw in (1.0, 3.0, math.nan, 2.0, math.inf, 5.0):
        clean = raw if math.isfinite(raw) else 0.0
        assert gaps.update(raw) == pytest.approx(zeros.update(clean), nan_ok=True)
