"""``amml``'s time-of-day part (``daily``): a day that misses its usual pattern alarms where
every value and every short shape is ordinary; it stays silent where the series has no daily
pattern or the timestamps never repeat a time of day."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.novelty import _TimeOfDay, time_of_day

DAY = 288  # five-minute rows


def _stamps(n: int, freq: str = "5min") -> list[str]:
    return pd.date_range("2024-03-04", periods=n, freq=freq).strftime("%Y-%m-%d %H:%M:%S").tolist()


def _daily_plateau(days: int = 14, seed: int = 0) -> np.ndarray:
    """Low at night, a plateau from 09:00 to 18:00 every day, a little noise."""
    rows = np.arange(days * DAY)
    within = rows % DAY
    values = np.where((within >= 108) & (within < 216), 80.0, 20.0)
    return values + np.random.default_rng(seed).normal(0, 1.0, len(rows))


def _missing_plateau() -> tuple[np.ndarray, int]:
    values = _daily_plateau()
    start = 10 * DAY + 108
    values[start:start + 108] = values[start - 200:start - 92]  # day 10 stays at its night level
    return values, start


def _alarms(values: np.ndarray, stamps: list | None, **params) -> np.ndarray:
    return make_detector("amml", output="alarm", alarm=0.45, **params).score_series(values, stamps)


def test_a_day_without_its_plateau_alarms_when_it_should_have_started():
    values, start = _missing_plateau()
    with_daily = _alarms(values, _stamps(len(values)))
    assert (with_daily[start:start + 24] == 1).any()  # within two hours of the missed rise
    # the other parts alone see nothing: every value and every short shape is an ordinary one
    assert not (_alarms(values, _stamps(len(values)), daily=0)[start:start + 108] == 1).any()
    assert not (_alarms(values, None)[start:start + 108] == 1).any()  # no timestamps: no part


def test_without_the_missed_day_the_part_adds_no_alarm():
    values = _daily_plateau()
    stamps = _stamps(len(values))
    np.testing.assert_array_equal(_alarms(values, stamps), _alarms(values, stamps, daily=0))


@pytest.mark.parametrize("kind", ["noise", "random_walk", "spikes"])
def test_a_series_without_a_daily_pattern_is_not_informative(kind):
    """Mean squared distance to the slot's median is then about the values' variance, far
    above ``daily`` times it: the part never joins, whatever its score."""
    rng = np.random.default_rng(5)
    n = 14 * DAY
    values = {"noise": rng.normal(size=n), "random_walk": np.cumsum(rng.normal(size=n)),
              "spikes": np.where(rng.random(n) < 0.02, 5.0, 0.0)}[kind]
    part = _TimeOfDay(0.1)
    for stamp, value in zip(_stamps(n), values, strict=True):
        part.update(stamp, value)
        assert not part.informative
    stamps = _stamps(n)
    np.testing.assert_array_equal(_alarms(values, stamps), _alarms(values, stamps, daily=0))


def test_a_daily_series_is_informative_once_it_has_days_to_compare():
    values = _daily_plateau()
    part = _TimeOfDay(0.1)
    informative = []
    for stamp, value in zip(_stamps(len(values)), values, strict=True):
        part.update(stamp, value)
        informative.append(part.informative)
    assert not any(informative[:3 * DAY])  # three earlier days are needed
    assert all(informative[5 * DAY:])


def test_a_pattern_that_repeats_every_288_rows_but_not_every_day_is_not_a_daily_one():
    """Rows 317 s apart: the plateau comes back every 288 rows, which is not a day, so no
    minute of the day follows it and the part stays out."""
    values, _ = _missing_plateau()
    irregular = _stamps(len(values), freq="317s")
    np.testing.assert_array_equal(_alarms(values, irregular), _alarms(values, irregular, daily=0))


def test_rows_without_timestamps_leave_the_part_silent():
    values, _ = _missing_plateau()
    part = _TimeOfDay(0.1)
    assert all(part.update(row, value) == 0.0 for row, value in enumerate(values))
    assert not part._slots and not part.informative


def test_several_rows_a_minute_keep_one_mean_a_day_and_memory_stays_bounded():
    """Ten-second rows for nine days: at most 1,440 minutes of seven daily means, and the
    missed plateau on day 6 (09:00-18:00 at its night level) still scores past 0.99."""
    stamps = pd.date_range("2024-03-04", periods=9 * 8640, freq="10s")
    minute = (stamps.hour * 60 + stamps.minute).to_numpy()
    day = np.arange(len(stamps)) // 8640
    rng = np.random.default_rng(3)
    plateau = (minute >= 540) & (minute < 1080) & (day != 6)
    values = np.where(plateau, 80.0, 20.0) + rng.normal(0, 1.0, len(stamps))
    part = _TimeOfDay(0.1)
    scores = np.array([part.update(s, v) for s, v in zip(stamps, values, strict=True)])
    assert len(part._slots) == 1440
    assert {len(slot.earlier) for slot in part._slots.values()} == {7}  # 8 closed, 7 kept
    missed = (day == 6) & (minute >= 540) & (minute < 600)
    assert scores[missed].max() >= 0.99 and part.informative
    assert scores[(day == 5)].max() < 0.99  # an ordinary day


@pytest.mark.parametrize("stamp", [
    "2024-03-04 09:05:07", "2024-03-04T09:05:07", datetime(2024, 3, 4, 9, 5, 7),
    pd.Timestamp("2024-03-04 09:05:07"), np.datetime64("2024-03-04T09:05:07"),
])
def test_time_of_day_reads_every_timestamp_kind(stamp):
    day, minute = time_of_day(stamp)
    assert minute == 9 * 60 + 5
    assert time_of_day(stamp.replace("04", "05", 1) if isinstance(stamp, str)
                       else stamp + pd.Timedelta(days=1))[0] == day + 1


@pytest.mark.parametrize("stamp", [None, 12, 3.5, "row 7", np.datetime64("NaT")])
def test_anything_else_has_no_time_of_day(stamp):
    assert time_of_day(stamp) is None


@pytest.mark.parametrize("daily", [-0.1, float("nan"), float("inf"), "high"])
def test_bad_daily_values_are_refused(daily):
    with pytest.raises(OpError, match="'daily' must be a number >= 0"):
        make_detector("amml", daily=daily)


def _weekly_plateau(weeks: int = 4, seed: int = 0) -> np.ndarray:
    """The daily plateau on weekdays, at a third of its height on Saturdays and Sundays."""
    values = _daily_plateau(7 * weeks, seed)
    weekend = (np.arange(len(values)) // DAY) % 7 >= 5  # 2024-03-04 is a Monday
    return np.where(weekend, 20.0 + (values - 20.0) / 3, values)


def test_weekends_that_differ_from_weekdays_are_not_novel():
    """The nearest of the last seven same-time values, not their median: a Saturday is close
    to last Saturday, though five weekdays outvote it."""
    values = _weekly_plateau()
    stamps = _stamps(len(values))
    np.testing.assert_array_equal(_alarms(values, stamps), _alarms(values, stamps, daily=0))


def test_days_that_vary_in_height_are_not_novel():
    """Each day's plateau 10% higher or lower than the last: a calibrated score past the
    part's own alarm level (0.99) is needed, ordinary variation stays below it."""
    values = _daily_plateau(21)
    heights = 1 + 0.1 * np.random.default_rng(2).normal(size=21)
    values = 20 + (values - 20) * np.repeat(heights, DAY)
    stamps = _stamps(len(values))
    np.testing.assert_array_equal(_alarms(values, stamps), _alarms(values, stamps, daily=0))


def test_a_sustained_shift_in_a_series_without_daily_pattern_adds_no_alarm():
    """The part's score is high for a whole day after a level shift in plain noise, but the
    series does not follow its time of day: the part does not join."""
    values = np.random.default_rng(4).normal(size=14 * DAY)
    values[10 * DAY:] += 10.0
    part, stamps = _TimeOfDay(0.1), _stamps(len(values))
    scores = np.array([part.update(s, v) for s, v in zip(stamps, values, strict=True)])
    assert scores[10 * DAY:11 * DAY].max() >= 0.99  # the part alone would alarm
    np.testing.assert_array_equal(_alarms(values, stamps), _alarms(values, stamps, daily=0))


def _noisy_missing_plateau(sigma: float) -> tuple[np.ndarray, list[str], int]:
    values = _daily_plateau() + np.random.default_rng(9).normal(0, sigma, 14 * DAY)
    start = 10 * DAY + 108
    values[start:start + 108] = values[start - 200:start - 92]
    return values, _stamps(len(values)), start


def test_a_noisy_daily_series_is_informative_only_under_a_looser_strength():
    """Noise of 8 around a plateau of 60: the squared distance to the slot's median is about a
    quarter of the variance, above the default ``daily`` (0.1) and below 0.5."""
    values, stamps, start = _noisy_missing_plateau(8.0)
    assert not (_alarms(values, stamps)[start:start + 108] == 1).any()
    assert (_alarms(values, stamps, daily=0.5)[start:start + 108] == 1).any()


def test_a_moderately_unusual_day_does_not_alarm_on_its_own():
    """Noise of 15: the missed plateau scores about 0.7 (calibrated), below the part's own
    alarm level; the other parts see nothing either."""
    values, stamps, start = _noisy_missing_plateau(15.0)
    part = _TimeOfDay(0.5)
    scores = np.array([part.update(s, v) for s, v in zip(stamps, values, strict=True)])
    assert part.informative and 0.5 < scores[start:start + 108].max() < 0.99
    assert not (_alarms(values, stamps, daily=0.5)[start:start + 108] == 1).any()


def test_a_flat_day_in_a_daily_sine_is_calibrated_against_ordinary_days_only():
    """The first distances come over a scale learnt from a handful of residuals (the very first
    over the range's floor: a distance of 58 where ordinary ones are under 1). Kept in the
    likelihood's history they widened it for the next 2,000 rows, and a day flat at its mean
    six days later scored 0.13 at most; learnt from ordinary days only, it scores far more."""
    rows = np.arange(14 * DAY)
    rng = np.random.default_rng(5)
    values = 20.0 + 3.0 * np.sin(2 * np.pi * rows / DAY) + rng.normal(0.0, 0.5, len(rows))
    onset = 5 * DAY + 258
    values[onset:onset + DAY] = 20.0 + rng.normal(0.0, 0.05, DAY)
    part = _TimeOfDay(0.1)
    scores = np.array([part.update(stamp, value)
                       for stamp, value in zip(_stamps(len(values)), values, strict=True)])
    assert scores[onset:onset + DAY].max() > 0.4
    assert scores[:onset].max() < 0.4  # ordinary days stay low
