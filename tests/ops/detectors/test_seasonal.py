"""``seasonal``: online seasonal-decomposition residuals, with the period given or detected."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.seasonal import detect_period
from amml.testing.checks import detector_check_series


def sine(n: int, period: int, seed: int = 0, sd: float = 0.3) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / period) + np.random.default_rng(seed).normal(0, sd, n)


def day_night(n: int = 1500, period: int = 48, seed: int = 3) -> np.ndarray:
    """Night level ~2, day level ~10, quick transitions, noise 0.3."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 6 + 4 * np.tanh(3 * np.sin(2 * np.pi * t / period)) + rng.normal(0, 0.3, n)


def stream(detector, values):
    return np.array([detector.update(None, float(v)) for v in values])


# ------------------------------------------------------------------------- period detection


@pytest.mark.parametrize("period", [7, 24, 48, 96])
def test_detect_period_of_a_noisy_sine(period):
    assert detect_period(sine(512, period, seed=period), 128) == period


def test_detect_period_prefers_the_fundamental_over_harmonics_and_multiples():
    t = np.arange(600)
    values = (np.sin(2 * np.pi * t / 50) + 0.8 * np.sin(4 * np.pi * t / 50)
              + 0.01 * t + np.random.default_rng(1).normal(0, 0.3, 600))
    assert detect_period(values, 200) == 50


def test_detect_period_finds_nothing_without_a_season():
    rng = np.random.default_rng(0)
    assert detect_period(rng.normal(0, 1, 384), 128) == 0
    for seed in range(5):
        walk = np.cumsum(np.random.default_rng(seed).normal(0, 1, 384))
        assert detect_period(walk, 128) == 0
    assert detect_period(np.full(384, 2.0), 128) == 0
    assert detect_period(np.arange(10.0), 128) == 0


def test_period_is_detected_at_the_end_of_the_warm_up_and_refined():
    # Five seasons of a noisy sine give a rough first estimate near the true 96 (within two
    # rows: not a value copied from the implementation); with twice the rows it is exact.
    values = sine(1100, 96, seed=8)
    first_guess = detect_period(values[:512], 128)
    assert abs(first_guess - 96) <= 2
    detector = make_detector("seasonal")
    stream(detector, values[:511])
    assert detector.period_ is None  # still warming up
    stream(detector, values[511:512])
    assert detector.period_ == first_guess  # detected on the warm-up rows, at their end
    stream(detector, values[512:1023])
    assert detector.period_ == first_guess  # kept until the refinement point
    stream(detector, values[1023:])
    assert detector.period_ == 96


def test_no_season_falls_back_to_level_only():
    rng = np.random.default_rng(2)
    values = np.cumsum(rng.normal(0, 0.2, 400)) + rng.normal(0, 1, 400)  # wandering level
    values[300] += 8.0
    detector = make_detector("seasonal", detect_after=24)  # tries at rows 24, 48, 96, 192
    scores = stream(detector, values)
    assert detector.period_ == 1
    assert int(np.nanargmax(scores[200:])) + 200 == 300 and scores[300] > 0.5


# ------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("period", [None, 48])
def test_value_wrong_for_its_phase_is_caught_where_rolling_mad_misses_it(period):
    """A daytime level at night: inside the global range, but not for its phase of the day."""
    values = day_night()
    night = [i for i in range(1000, 1200) if np.sin(2 * np.pi * i / 48) < -0.9]
    single, burst = night[0], night[0] + 48
    values[single] = 10.0
    values[burst:burst + 4] = 10.0
    assert values.min() < values[single] < values.max()
    anomalies = [single, *range(burst, burst + 4)]
    seasonal = make_detector("seasonal", period=period, window=128).score_series(values)
    robust = make_detector("rolling_mad", window=128).score_series(values)
    assert seasonal[anomalies].min() > 0.8
    assert np.nanmax(np.delete(seasonal, anomalies)[400:]) < 0.4
    assert robust[anomalies].max() < 0.2  # the rolling window's median/MAD span day and night
    assert int(np.nanargmax(seasonal[400:])) + 400 in anomalies


def test_spike_on_a_trending_season():
    values = detector_check_series(2000) + 0.002 * np.arange(2000)
    values[1500] += 4.0
    scores = make_detector("seasonal").score_series(values)
    assert int(np.nanargmax(scores[400:])) + 400 == 1500 and scores[1500] > 0.5


def test_a_spike_does_not_leak_into_the_next_season():
    """Residuals are clipped before they move the level and the seasonal terms."""
    values = detector_check_series(1600)
    values[1000] += 1000.0
    scores = make_detector("seasonal", period=96).score_series(values)
    assert scores[1000] > 0.9
    assert scores[1001:].max() < 0.5  # not at the next row, not a season later (row 1096)


def test_gaps_are_scored_as_expected_values():
    values = detector_check_series(1200)
    values[[600, 601, 700]] = [np.nan, np.inf, -np.inf]
    values[900] += 6.0
    for period in (None, 96):
        scores = make_detector("seasonal", period=period).score_series(values)
        warm = int(np.argmax(np.isfinite(scores)))  # NaN during the warm-up only
        assert np.all((scores[warm:] >= 0) & (scores[warm:] <= 1))
        assert scores[[600, 601, 700]].max() < 0.3
        assert int(np.nanargmax(scores)) == 900


def test_flat_series_stays_defined():
    values = np.r_[np.full(800, 5.0), 6.0, np.full(50, 5.0)]  # plain, then level-only
    scores = make_detector("seasonal").score_series(values)
    warm = int(np.argmax(np.isfinite(scores)))
    assert 0 < warm < 100 and np.all(np.isfinite(scores[warm:]))
    assert scores[800] == np.nanmax(scores) > 0.5


def test_batch_equals_streaming_across_detection_and_refinement():
    values = sine(1100, 96, seed=8)
    values[[100, 700]] = [np.nan, 9.0]
    detector = make_detector("seasonal")
    np.testing.assert_allclose(detector.score_series(values), stream(detector.clone(), values),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize(("params", "message"), [
    ({"period": -1}, "period must be None, 0 .* or an integer >= 1"),
    ({"period": 2.5}, "period must be None"),
    ({"period": True}, "period must be None"),
    ({"window": 1}, "window must be an integer >= 2"),
    ({"detect_after": 10}, "detect_after must be an integer >= 24"),
    ({"trend_alpha": 1.5}, r"trend_alpha must be a number in \[0.0, 1.0\]"),
    ({"season_alpha": -0.1}, "season_alpha must be a number"),
    ({"huber": 0.1}, "huber must be a number"),
])
def test_bad_parameters(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("seasonal", **params)
