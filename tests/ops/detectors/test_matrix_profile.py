"""matrix_profile: stumpy's left matrix profile as a causal discord score (stump in a batch,
stumpi in a stream), a threshold frozen on the warm-up, NaN warm-up rows."""

from __future__ import annotations

import numpy as np
import pytest
import stumpy

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.matrix_profile import MatrixProfileDetector, znorm_distance

PERIOD = 40


def pattern(n: int = 900, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / PERIOD) + np.random.default_rng(seed).normal(0, 0.05, n)


def test_broken_pattern_in_range_is_the_top_discord():
    values = pattern()
    values[700:710] = values[700:710][::-1]  # in range: a value detector sees nothing
    detector = make_detector("matrix_profile", window=PERIOD // 2, warmup=240)
    scores = detector.score_series(values)
    assert np.isnan(scores[:240]).all() and np.isfinite(scores[240:]).all()
    top = int(np.nanargmax(scores))
    assert top in range(700, 700 + 10 + PERIOD // 2) and scores[top] > 0.5
    assert np.nanmax(scores[240:690]) < 0.5  # the threshold, frozen on the warm-up, holds
    gaussian = make_detector("windowed_gaussian").score_series(values)
    assert int(np.nanargmax(gaussian[240:])) + 240 not in range(700, 730)


def test_scores_are_stumpys_left_matrix_profile():
    """The raw score of each row is stumpi's left matrix profile value of the subsequence
    ending there; stumpi is updated a value at a time as update() is called."""
    values = pattern(400, seed=2)
    m, warmup = 16, 100
    detector = MatrixProfileDetector(window=m, warmup=warmup)
    scores = np.array([detector.update(i, v) for i, v in enumerate(values)])
    reference = stumpy.stumpi(values[:warmup], m, egress=False)
    for v in values[warmup:]:
        reference.update(v)
    threshold = detector.threshold_raw_
    raw = threshold * scores[warmup:] / (1.0 - scores[warmup:])
    np.testing.assert_allclose(raw, reference.left_P_[warmup - m + 1:], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(detector.score_series(values), scores, rtol=0, atol=1e-9,
                               equal_nan=True)


def test_distance_of_constant_subsequences():
    flat, wave = np.full((1, 8), 3.0), np.sin(np.arange(8.0))[None, :]
    assert znorm_distance(flat, flat)[0] == 0.0
    assert znorm_distance(flat, wave)[0] == pytest.approx(np.sqrt(8))
    assert znorm_distance(wave, 2 * wave + 5)[0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("params", "message"), [
    ({"window": 2}, "window must be an integer >= 3"),
    ({"window": 32, "warmup": 100}, "warmup must be an integer >= 128"),
    ({"quantile": 1.5}, "quantile must be a number in"),
    ({"factor": 0}, "factor must be a number > 0"),
])
def test_bad_parameters(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("matrix_profile", **params)
