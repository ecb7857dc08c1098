"""``amml`` (NoveltyDetector): shape novelty finds what a z-score cannot, memory stays bounded,
alarms come one per event."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.novelty import NoveltyDetector, _ShapeNovelty
from amml.ops.stats import pairwise_column_sums


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
    assert small._bank.size == (2 * 64 + 8) * 8  # twice the memory, plus one sub-sequence
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
    ({"shapes": "8,16"}, "'shapes' must be a list of whole sub-sequence lengths"),
    ({"shapes": [8, 2.5]}, "'shapes' must be a list of whole"),
    ({"memory": 0}, "'memory' must be positive"),
    ({"record": -0.5}, "'record' must be a number >= 0"),
    ({"record": float("nan")}, "'record' must be a number >= 0"),
    ({"record_warmup": -1}, "'record_warmup' must be >= 0"),
])
def test_bad_parameters(params, message):
    with pytest.raises(OpError, match=message):
        NoveltyDetector(**params)


def test_a_value_of_the_wrong_kind_is_an_op_error_naming_the_detector():
    with pytest.raises(OpError, match=r"detector 'amml': a parameter has a value of the wrong "
                                      r"kind .*'window': 'wide'"):
        make_detector("amml", window="wide")


def test_shapes_may_be_numpy_integers():
    assert NoveltyDetector(shapes=np.array([8, 16])).shapes == (8, 16)
    assert NoveltyDetector(shapes=(np.int64(4), 12.0)).shapes == (4, 12)


def test_parameters_round_trip():
    detector = make_detector("amml", shapes=[4, 12], memory=128)
    assert detector.get_params()["shapes"] == (4, 12)
    assert detector.clone().get_params() == detector.get_params()


@pytest.mark.parametrize("alarm", [0.45, 0.5])
def test_alarm_output_is_the_detectors_own_decision(alarm):
    """``output="alarm"``: 1 exactly where the score output passes ``alarm`` (after the peak
    and suppression filters), 0 elsewhere, NaN during the same warm-up; streams as it batches."""
    values = _oscillation()
    values[1500:1700] += 5.0
    values[900] += 3.0
    scores = make_detector("amml", alarm=alarm).score_series(values)
    decided = make_detector("amml", alarm=alarm, output="alarm")
    alarms = decided.score_series(values)
    np.testing.assert_array_equal(np.isnan(alarms), np.isnan(scores))
    warm = np.isfinite(scores)
    np.testing.assert_array_equal(alarms[warm], (scores[warm] >= alarm).astype(float))
    assert alarms[1500:1510].max() == 1.0 and set(np.unique(alarms[warm])) == {0.0, 1.0}
    stream = decided.clone()
    np.testing.assert_array_equal(np.array([stream.update(i, v) for i, v in enumerate(values)]),
                                  alarms)
    with pytest.raises(OpError, match="'output' must be one of score, alarm"):
        make_detector("amml", output="binary")


def _early_spikes_then_a_larger_one(seed: int = 0) -> np.ndarray:
    values = 0.1 + 0.02 * np.random.default_rng(seed).normal(size=800)
    values[[40, 90, 130, 170]] = [0.5, 0.55, 0.6, 0.45]  # while the history is short
    values[500] = 0.95  # later, farther from anything seen than any sub-sequence before
    return values


def test_a_record_novelty_alarms_where_the_likelihood_is_blind():
    values = _early_spikes_then_a_larger_one()
    with_record = make_detector("amml", output="alarm").score_series(values)
    without = make_detector("amml", output="alarm", record=0).score_series(values)
    assert np.flatnonzero(with_record == 1).tolist() == [500]
    assert not (without == 1).any()  # the calibrated parts alone miss it


def test_record_distances_of_the_first_rows_are_not_kept():
    values = _early_spikes_then_a_larger_one()
    values[60] = 3.0  # a far larger spike, but inside the record warm-up
    kept = make_detector("amml", output="alarm", record_warmup=100).score_series(values)
    counted = make_detector("amml", output="alarm", record_warmup=20).score_series(values)
    assert kept[500] == 1.0 and counted[500] == 0.0


@pytest.mark.parametrize("kind", ["student_t", "random_walk", "lognormal"])
def test_record_novelty_adds_no_alarm_on_anomaly_free_series_once_warm(kind):
    """Records are common while little has been kept (heavy-tailed noise can set one near the
    start); later, every alarm is one the calibrated parts raise as well."""
    rng = np.random.default_rng(7)
    values = {"student_t": rng.standard_t(3, 3000),
              "random_walk": np.cumsum(rng.normal(size=3000)),
              "lognormal": rng.lognormal(0, 1, 3000)}[kind]
    with_record = make_detector("amml", output="alarm").score_series(values)
    without = make_detector("amml", output="alarm", record=0).score_series(values)
    np.testing.assert_array_equal(with_record[400:], without[400:])
    assert (without[400:] == 1).any()  # there are alarms to compare


@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 16, 17, 64, 128, 129, 300])
def test_column_sums_are_numpys_row_sums_to_the_bit(length):
    rng = np.random.default_rng(length)
    rows = rng.random((2000, length)) ** 3 * rng.choice([1e-3, 1.0, 1e3], size=(2000, 1))
    np.testing.assert_array_equal(pairwise_column_sums(np.ascontiguousarray(rows.T)),
                                  rows.sum(axis=1))


@pytest.mark.parametrize("length", [8, 16])
def test_shape_distances_are_the_row_mean_formula_to_the_bit(length):
    """The column layout gives exactly the nearest-neighbour distance of the plain formula,
    also after the bank has been compacted (memory 50: many times over in 400 rows)."""
    values = np.random.default_rng(4).normal(size=400).cumsum()
    shape = _ShapeNovelty(length, memory=50)
    history: list[np.ndarray] = []
    for i, value in enumerate(values):
        shape.update(value)
        if i + 1 < length:
            continue
        current = values[i + 1 - length:i + 1]
        newest = len(history) - length  # the overlapping ones excluded
        earlier = history[max(0, newest - 50):newest] if newest > 0 else []
        if earlier:
            expected = np.sqrt(((np.array(earlier) - current) ** 2).mean(axis=1).min())
            assert shape.distance == expected, i
        else:
            assert shape.distance == 0.0
        history.append(current)
