"""``amml`` (NoveltyDetector): shape novelty finds what a z-score cannot, memory stays bounded,
alarms come one per event."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.novelty import NoveltyDetector, _ShapeNovelty


def _oscillation(n: int = 2000, seed: int = 1) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 50) + np.random.default_rng(seed).normal(0, 0.05, n)


def test_a_pattern_break_inside_the_usual_range_is_found():
    values = _oscillation()
    values[1500:1540] = values[1500]  # the oscillation freezes mid-range
    scores = make_detector("amml").score_series(values)
    top = int(np.nanargmax(scores[400:])) + 400
    assert 1500 <= top < 1545 and scores[top] > 0.5
    mad = make_detector("rolling_mad").score_series(values)
    assert mad[1500:1545].max() < scores[top]


def test_one_alarm_per_event():
    values = _oscillation()
    values[1500:1700] += 5.0  # a long excursion: one alarm, then silence
    scores = make_detector("amml").score_series(values)
    alarms = np.flatnonzero(scores[1500:1700] >= 0.5)
    assert alarms.size >= 1 and np.all(np.diff(alarms) > 50)


def test_memory_is_bounded_and_matches_unbounded_history_while_it_fits():
    values = _oscillation(600)
    small, large = _ShapeNovelty(8, memory=64), _ShapeNovelty(8, memory=10_000)
    raw_small = [small.update(v) for v in values]
    raw_large = [large.update(v) for v in values]
    assert small._bank.shape[0] == 2 * 64 + 8
    assert raw_small[:64 + 8] == raw_large[:64 + 8]
    assert raw_small != raw_large  # older neighbours were forgotten


def test_nearest_neighbour_is_exact_against_brute_force():
    values = np.random.default_rng(3).normal(size=200)
    shape = _ShapeNovelty(5, memory=1000)
    raw = [shape.update(v) for v in values]
    i = 150
    current = values[i - 4:i + 1]
    earlier = np.array([values[j - 4:j + 1] for j in range(4, i - 4)])
    expected = np.sqrt(((earlier - current) ** 2).mean(axis=1).min())
    expected /= values[:i + 1].max() - values[:i + 1].min()
    assert raw[i] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("params", "message"), [
    ({"window": 3}, "'window' must be at least 8"),
    ({"shapes": ()}, "'shapes' must be"),
    ({"shapes": (1,)}, "'shapes' must be"),
    ({"memory": 0}, "'memory' must be positive"),
])
def test_bad_parameters(params, message):
    with pytest.raises(OpError, match=message):
        NoveltyDetector(**params)


def test_parameters_round_trip():
    detector = make_detector("amml", shapes=[4, 12], memory=128)
    assert detector.get_params()["shapes"] == (4, 12)
    assert detector.clone().get_params() == detector.get_params()
