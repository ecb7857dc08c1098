"""``rolling_mad``: robust z-score against the previous window, calibrated to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.robust import MAX_Z, median, median_scale, robust_z


def noise(n: int = 1200, seed: int = 0) -> np.ndarray:
    return 10 + np.random.default_rng(seed).normal(0, 1, n)


def test_median_scale_and_z():
    past = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    median, scale = median_scale(past, 1e-9)
    assert median == 3.0 and scale == pytest.approx(1.4826)  # the outlier does not count
    assert robust_z(3.0 + 2 * 1.4826, median, scale) == pytest.approx(2.0)
    assert median_scale(np.full(5, 7.0), 0.5) == (7.0, 0.5)
    assert robust_z(1e300, 0.0, 1e-300) == MAX_Z


def test_spike_is_top_and_noise_stays_quiet():
    values = noise()
    values[900] += 8.0
    scores = make_detector("rolling_mad").score_series(values)
    assert int(np.nanargmax(scores)) == 900 and scores[900] > 0.5
    assert np.nanmax(np.delete(scores, 900)) < 0.45


def test_second_spike_is_not_masked_by_the_first():
    """The median and MAD ignore the first spike, so a second one close behind still scores."""
    values = noise()
    values[[800, 805]] += 9.0
    scores = make_detector("rolling_mad").score_series(values)
    assert scores[800] > 0.5 and scores[805] > 0.5
    assert np.nanmax(np.delete(scores, [800, 805])) < 0.45


def test_flat_series_stays_defined():
    values = np.r_[np.full(400, 5.0), 6.0, np.full(50, 5.0)]
    scores = make_detector("rolling_mad").score_series(values)
    assert np.isnan(scores[:32]).all() and np.all(np.isfinite(scores[33:]))  # warm-up: NaN
    assert scores[400] == np.nanmax(scores) > 0.5


def test_gaps_are_not_anomalies_and_do_not_poison_the_window():
    values = noise()
    values[[500, 501, 700]] = [np.nan, np.inf, -np.inf]
    values[900] += 8.0
    scores = make_detector("rolling_mad").score_series(values)
    assert np.all((scores[33:] >= 0) & (scores[33:] <= 1))
    assert scores[[500, 501, 700]].max() < 0.3
    assert int(np.nanargmax(scores)) == 900


def test_batch_equals_streaming():
    values = noise(600, seed=3)
    values[[100, 300]] = [np.nan, 40.0]
    detector = make_detector("rolling_mad", window=32, warmup=8)
    streamed = [detector.update(None, float(v)) for v in values]
    np.testing.assert_allclose(detector.score_series(values), streamed, rtol=0, atol=1e-9)


def test_short_window():
    values = np.r_[noise(200), 30.0]
    scores = make_detector("rolling_mad", window=16).score_series(values)
    assert scores[-1] == np.nanmax(scores) > 0.5


@pytest.mark.parametrize(("params", "message"), [
    ({"window": 1}, "window must be an integer >= 2"),
    ({"window": 2.5}, "window must be an integer >= 2"),
    ({"window": True}, "window must be an integer >= 2"),
    ({"range_floor": -0.1}, r"range_floor must be a number in \[0.0, 1.0\]"),
    ({"min_scale": -1.0}, "min_scale must be a number"),
    ({"long": 1}, "long must be an integer >= 2"),
    ({"warmup": -1}, "warmup must be an integer >= 0"),
])
def test_bad_parameters(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("rolling_mad", **params)


@pytest.mark.parametrize("size", [1, 2, 5, 128])
def test_median_matches_numpy(size):
    values = np.random.default_rng(size).normal(size=size)
    assert median(values) == np.median(values)
