"""Streaming detectors: batch == streaming, causal, bounded, and they find a spike."""

from __future__ import annotations

import numpy as np
import pytest

from amml.ops.detectors.streaming import DETECTORS, make_detector


def _series(n: int = 900, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 3 * np.sin(2 * np.pi * t / 96) + rng.normal(0, 0.3, n)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_batch_equals_streaming(name):
    values = _series()
    detector = make_detector(name)
    streamed = np.array([detector.update(i, v) for i, v in enumerate(values)])
    batch = make_detector(name).score_series(values)
    assert np.array_equal(streamed, batch)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_causal_and_bounded(name):
    values = _series()
    short = make_detector(name).score_series(values[:500])
    future = np.r_[values[500:], 1e6, -1e6, np.nan]
    longer = make_detector(name).score_series(np.r_[values[:500], future])
    assert np.array_equal(short, longer[:500])
    assert np.all((longer >= 0) & (longer <= 1))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detects_an_injected_spike(name):
    values = _series()
    values[700] += 8.0
    scores = make_detector(name).score_series(values)
    assert int(np.argmax(scores[100:])) + 100 == 700


def test_flat_series_stays_defined():
    values = np.r_[np.full(400, 5.0), 6.0, np.full(50, 5.0)]
    scores = make_detector("amml").score_series(values)
    assert np.all(np.isfinite(scores)) and scores[400] == scores.max() > 0.5


def test_unknown_detector():
    with pytest.raises(ValueError, match="unknown streaming detector"):
        make_detector("nope")
