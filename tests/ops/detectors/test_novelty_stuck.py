"""``amml``'s stuck part (``stuck``): a series whose values rarely repeat that repeats one value
for ``stuck`` rows alarms, where every other part sees ordinary values in an ordinary shape;
series where repeats are common, or that are flat from the start, are left alone."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.novelty import STUCK_HISTORY, _Stuck
from amml.testing.checks import check_detector


def _alarms(values: np.ndarray, **params) -> np.ndarray:
    return make_detector("amml", output="alarm", alarm=0.45, **params).score_series(values)


def _stuck_at(values: np.ndarray, start: int, rows: int) -> np.ndarray:
    values = values.copy()
    values[start:start + rows] = values[start - 1]
    return values


def test_a_sensor_stuck_at_its_last_reading_alarms_on_the_twelfth_equal_value():
    values = _stuck_at(np.random.default_rng(0).normal(20.0, 1.0, 1000), 600, 100)
    alarms = _alarms(values)
    # row 599 holds the reading; rows 600.. repeat it: the run reaches 12 rows at row 610
    assert alarms[610] == 1.0 and not (alarms[600:610] == 1.0).any()
    assert not (_alarms(values, stuck=0)[600:700] == 1.0).any()  # the other parts see nothing
    assert _alarms(values, stuck=5)[603] == 1.0


def test_counts_that_often_repeat_are_left_alone():
    values = _stuck_at(np.random.default_rng(1).poisson(3.0, 1000).astype(float), 600, 100)
    np.testing.assert_array_equal(_alarms(values), _alarms(values, stuck=0))


def test_a_series_flat_from_its_start_and_a_short_history_are_left_alone():
    assert not (_alarms(np.full(1000, 5.0)) == 1.0).any()
    values = _stuck_at(np.random.default_rng(2).normal(0.0, 1.0, 400), 60, 100)
    np.testing.assert_array_equal(_alarms(values), _alarms(values, stuck=0))


def _part(history: np.ndarray, rows: int = 12) -> tuple[_Stuck, list[bool]]:
    part = _Stuck(rows)
    return part, [part.update(float(v)) for v in history]


def test_the_share_of_repeats_before_the_run_decides():
    fresh = np.arange(200.0)  # no value repeats the one before it
    for repeats, fires in ((0, True), (1, True), (2, False), (5, False)):
        history = fresh.copy()
        for k in range(repeats):  # 1% of 200 rows is 2: fewer than that still fires
            history[10 + 20 * k] = history[9 + 20 * k]
        part, fired = _part(history)
        assert not any(fired)
        run = [part.update(-1.0) for _ in range(12)]
        assert run == [False] * 11 + [fires], repeats
        assert not part.update(-1.0)  # once per run, not on every row after


def test_the_history_must_be_long_enough():
    for history, fires in ((STUCK_HISTORY - 1, False), (STUCK_HISTORY, True)):
        part, _ = _part(np.arange(float(history)))
        assert [part.update(-1.0) for _ in range(12)][-1] is fires


def test_a_gap_is_not_a_stuck_reading():
    part, _ = _part(np.arange(200.0))
    assert not any(part.update(float("nan")) for _ in range(50))
    assert [part.update(7.0) for _ in range(12)] == [False] * 11 + [True]
    # a gap inside a run ends it: twelve equal values around a NaN are two short runs
    part, _ = _part(np.arange(200.0))
    assert not any([part.update(3.0) for _ in range(6)] + [part.update(float("nan"))]
                   + [part.update(3.0) for _ in range(6)])


def test_contract_holds_and_bad_values_are_clear_errors():
    assert check_detector(make_detector("amml", stuck=5)) == {}
    assert make_detector("amml").get_params()["stuck"] == 12
    for bad in (1, -1, 2.5, True, "12"):
        with pytest.raises(OpError, match="'stuck' must be a whole number of rows >= 2"):
            make_detector("amml", stuck=bad)


def test_numpy_whole_numbers_are_taken():
    assert make_detector("amml", stuck=np.int64(6)).get_params()["stuck"] == 6
