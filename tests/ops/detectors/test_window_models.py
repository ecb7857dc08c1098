"""What both sliding-window model detectors (``isolation_forest``, ``autoencoder``) must do:
see a broken relation between channels that no channel shows alone, and find a univariate
spike, with scalar updates equal to the batch path."""

from __future__ import annotations

import numpy as np
import pytest

from amml.ops.detectors.base import make_detector


def phase_break(seed: int = 0, n: int = 1000, start: int = 714, stop: int = 810):
    """Two channels share a 48-row cycle and a slow random component; in ``[start, stop)`` the
    second one's cycle lags by a quarter period. The switches fall where the two cycles cross,
    so neither channel jumps: each alone is an ordinary cycle plus wander, only their relation
    breaks. Returns ``(rows, start, stop)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    wander = np.zeros(n + 5)
    steps = rng.normal(0, 0.3, n + 5)
    for i in range(1, n + 5):
        wander[i] = 0.97 * wander[i - 1] + steps[i]
    wander = np.convolve(wander, np.ones(5) / 5, mode="valid")[:n]
    lag = np.where((t >= start) & (t < stop), 12, 0)
    x = 2 * np.sin(2 * np.pi * t / 48) + wander + rng.normal(0, 0.1, n)
    y = 2 * np.sin(2 * np.pi * (t - lag) / 48) + wander + rng.normal(0, 0.1, n)
    return np.column_stack([x, y]), start, stop


@pytest.mark.parametrize("name", ["isolation_forest", "autoencoder"])
def test_broken_relation_caught_that_no_single_column_shows(name):
    rows, start, stop = phase_break()
    detector = make_detector(name)
    both = detector.score_series(rows)
    outside = np.r_[250:start - 5, stop + 10:len(rows)]
    assert both[start:stop].max() > 0.99 and np.mean(both[start:stop] > 0.5) > 0.2
    assert both[outside].max() < 0.9
    for column in range(2):  # each channel alone: nothing unusual in the segment
        alone = detector.score_series(rows[:, column])
        assert alone[start:stop].max() < 0.9


@pytest.mark.parametrize("name", ["isolation_forest", "autoencoder"])
def test_univariate_spike_and_scalar_updates(name):
    rng = np.random.default_rng(1)
    values = 5 + np.sin(np.arange(700) / 6) + rng.normal(0, 0.1, 700)
    values[600] += 3.0
    detector = make_detector(name)
    scores = detector.score_series(values)
    assert int(np.nanargmax(scores[250:])) + 250 == 600 and scores[600] > 0.99
    stream = detector.clone()
    streamed = [stream.update(i, float(v)) for i, v in enumerate(values)]  # scalars work
    np.testing.assert_array_equal(streamed, scores)
    assert np.isnan(scores[:200]).all()  # nothing before the first fit: no score, not 0
