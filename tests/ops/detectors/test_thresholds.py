"""Thresholds on hand-computed cases: fixed, quantile of a reference period, best F1 on labels
(points and events), and the alarm series with ``min_gap``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from amml._exceptions import OpError
from amml.ops.detectors import thresholds
from amml.ops.detectors.thresholds import (
    SPOT,
    ThresholdConfig,
    alarm_metrics,
    alarms,
    choose_threshold,
    pot_threshold,
    runs,
)

TEN = np.arange(10) / 10  # 0.0, 0.1, ..., 0.9
HOURS = pd.date_range("2024-01-01", periods=10, freq="h")


def test_fixed_threshold_and_alarms_at_or_above_it() -> None:
    assert choose_threshold(TEN, ThresholdConfig()) == 0.5  # the default: fixed 0.5
    assert choose_threshold(TEN, ThresholdConfig(kind="fixed", value=0.25)) == 0.25
    assert alarms([0.1, 0.5, 0.7, np.nan], 0.5).tolist() == [0, 1, 1, 0]
    assert alarms([1.0, 1.0], 1.0).tolist() == [1, 1]  # saturated scores still alarm
    assert alarms(TEN, 0.5).dtype == np.int8


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.2), (0.75, 0.3), (1.0, 0.4), (0.0, 0.0)])
def test_quantile_of_the_first_share_of_rows(q: float, expected: float) -> None:
    config = ThresholdConfig(kind="quantile", quantile=q, reference=0.5)  # rows 0-4
    assert choose_threshold(TEN, config) == pytest.approx(expected)


def test_quantile_reference_defaults_and_ignores_nan() -> None:
    # default reference 0.3 of 10 rows: 0.0, 0.1, 0.2; the quantile 0.995 is just under 0.2
    assert choose_threshold(TEN, ThresholdConfig(kind="quantile")) == pytest.approx(0.199)
    scores = np.r_[np.nan, 0.1, 0.3, TEN[3:]]
    config = ThresholdConfig(kind="quantile", quantile=1.0, reference=0.3)
    assert choose_threshold(scores, config) == pytest.approx(0.3)


def test_quantile_reference_until_a_timestamp_inclusive() -> None:
    config = ThresholdConfig(kind="quantile", quantile=1.0, reference_end="2024-01-01 02:00")
    assert choose_threshold(TEN, config, timestamps=HOURS) == pytest.approx(0.2)
    aware = HOURS.tz_localize("UTC")  # a naive reference_end is read in the data's zone
    assert choose_threshold(TEN, config, timestamps=aware) == pytest.approx(0.2)
    with pytest.raises(OpError, match=r"^threshold: 'reference_end' needs timestamps \(a time "
                       r"index or a 'timestamp' column\); use 'reference' \(a share of the "
                       r"rows\) instead$"):
        choose_threshold(TEN, config)
    early = ThresholdConfig(kind="quantile", reference_end="2023-12-31")
    with pytest.raises(OpError, match="no row at or before reference_end"):
        choose_threshold(TEN, early, timestamps=HOURS)
    with pytest.raises(OpError, match="is not a timestamp"):
        choose_threshold(TEN, ThresholdConfig(kind="quantile", reference_end="soon"),
                         timestamps=HOURS)


def test_quantile_reference_without_finite_scores_fails() -> None:
    with pytest.raises(OpError, match=r"^threshold: the reference period has no finite scores$"):
        choose_threshold(np.r_[np.nan, np.nan, TEN], ThresholdConfig(kind="quantile",
                                                                    reference=0.1))


def test_labels_point_f1_hand_computed() -> None:
    # cuts: >=0.9: F1 2/3; >=0.8: 1/2; >=0.7: 4/5 (best); >=0.6: 2/3; all: 4/7
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [1, 0, 1, 0, 0]
    assert choose_threshold(scores, ThresholdConfig(kind="labels"), labels) == \
        pytest.approx(0.65)  # midway between the lowest alarmed and the highest quiet score
    perfect = choose_threshold([0.1, 0.9, 0.2, 0.8, 0.3, 0.7], ThresholdConfig(kind="labels"),
                               [0, 1, 0, 1, 0, 0])
    assert perfect == pytest.approx(0.75)


def test_labels_ties_go_to_the_fewest_alarms() -> None:
    # >=0.9 gives TP 1 of 1 alarm (F1 2/3), alarming all gives TP 2 of 4 (also 2/3)
    chosen = choose_threshold([0.9, 0.8, 0.7, 0.6], ThresholdConfig(kind="labels"), [1, 0, 0, 1])
    assert chosen == pytest.approx(0.85)


def test_labels_rows_without_a_label_are_left_out() -> None:
    scores = [0.9, 0.95, 0.8, 0.1, 0.2]
    labels = [1, np.nan, 1, 0, np.nan]  # the top score is unlabelled: it must not count
    assert choose_threshold(scores, ThresholdConfig(kind="labels"), labels) == \
        pytest.approx(0.45)
    # a label that is not a number (a hand-labelled column's "?" or blank) is no label
    assert choose_threshold(scores, ThresholdConfig(kind="labels"), ["1", "?", "1", "0", ""]) \
        == pytest.approx(0.45)


def test_point_and_event_f1_choose_differently() -> None:
    # one long event with a single high point, and a one-row event
    scores = [0.1, 0.9, 0.3, 0.3, 0.3, 0.1, 0.8]
    labels = [0, 1, 1, 1, 1, 0, 1]
    # points: alarming rows 1-4 and 6 is perfect (cut between 0.1 and 0.3)
    assert choose_threshold(scores, ThresholdConfig(kind="labels"), labels) == \
        pytest.approx(0.2)
    # events: one alarm per event is already perfect, and fewer alarms win the tie
    event = ThresholdConfig(kind="labels", metric="event_f1")
    assert choose_threshold(scores, event, labels) == pytest.approx(0.55)


def test_event_f1_hand_computed() -> None:
    # events: rows 1-2 and row 5; row 3 is a false alarm at every useful cut
    scores = [0.1, 0.6, 0.2, 0.9, 0.3, 0.4, 0.2]
    labels = [0, 1, 1, 0, 0, 1, 0]
    config = ThresholdConfig(kind="labels", metric="event_f1")
    # >=0.9: F1 0; >=0.6: P 1/2 R 1/2; >=0.4: P 2/3 R 1 (0.8); >=0.3: also 0.8 ([3,4] is one
    # false run); >=0.2: P 1/2; all: P 2/5
    assert choose_threshold(scores, config, labels) == pytest.approx(0.35)
    best = alarm_metrics(alarms(scores, 0.35), np.array(labels))
    assert best["event_f1"] == pytest.approx(0.8) and best["event_recall"] == 1.0


def test_event_search_on_a_long_series_keeps_the_cut_that_finds_each_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thresholds, "MAX_EVENT_CANDIDATES", 10)
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.5, 3000)
    labels = np.zeros(3000)
    for row in (400, 1100, 1900, 2500):
        scores[row], labels[row] = 0.9, 1
    chosen = choose_threshold(scores, ThresholdConfig(kind="labels", metric="event_f1"), labels)
    assert scores.max(where=labels == 0, initial=0) < chosen <= 0.9
    assert alarm_metrics(alarms(scores, chosen), labels)["event_f1"] == 1.0


def test_labels_kind_needs_labels_with_an_anomaly() -> None:
    config = ThresholdConfig(kind="labels")
    with pytest.raises(OpError, match=r"^threshold kind 'labels' needs a label column: set "
                       r"'label: <column>' on the step, or choose kind 'fixed' or 'quantile'$"):
        choose_threshold(TEN, config)
    with pytest.raises(OpError, match=r"^threshold kind 'labels': the label column marks no "
                       r"anomaly in the labelled rows, so no threshold can be chosen from it$"):
        choose_threshold(TEN, config, np.zeros(10))
    with pytest.raises(OpError, match="3 labels for 10 scores"):
        choose_threshold(TEN, config, [0, 1, 0])


def test_min_gap_keeps_one_alarm_every_gap_rows() -> None:
    assert np.flatnonzero(alarms(np.ones(10), 0.5, min_gap=3)).tolist() == [0, 3, 6, 9]
    assert alarms(np.ones(4), 0.5, min_gap=1).tolist() == [1, 1, 1, 1]
    scores = [0.9, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9]
    assert alarms(scores, 0.5, min_gap=3).tolist() == [1, 0, 0, 0, 0, 1, 0]


def test_alarm_metrics_hand_computed() -> None:
    alarm = np.array([0, 1, 1, 1, 0, 0, 1, 0, 0])
    truth = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1])
    metrics = alarm_metrics(alarm, truth)
    assert metrics["precision"] == pytest.approx(2 / 4)
    assert metrics["recall"] == pytest.approx(2 / 4)
    assert metrics["event_recall"] == pytest.approx(1 / 2)
    # alarm runs cut at label changes: [1] false, [2,3] right, [6] false
    assert metrics["event_precision"] == pytest.approx(1 / 3)
    assert metrics["event_f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert alarm_metrics(np.zeros(4), np.array([0, 1, 0, 0]))["f1"] == 0.0
    assert runs(np.array([1, 1, 0, 1])) == [(0, 2), (3, 4)]


def test_config_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        ThresholdConfig(kind="median")
    with pytest.raises(ValidationError):
        ThresholdConfig(quantile=1.5)
    with pytest.raises(ValidationError):
        ThresholdConfig(treshold=0.4)
    with pytest.raises(ValidationError):
        ThresholdConfig(min_gap=-1)
    with pytest.raises(ValidationError):
        ThresholdConfig().value = 0.1  # type: ignore[misc]


def test_pot_extrapolates_beyond_the_largest_score():
    rng = np.random.default_rng(0)
    scores = rng.exponential(1.0, 20000)
    level = thresholds.pot_threshold(scores, risk=1e-5)
    assert level > scores.max() and abs(level - np.log(1e5)) < 1.5  # exact: 11.5
    fresh = rng.exponential(1.0, 200000)
    assert (fresh > level).mean() < 5e-5  # about risk (1e-5) of new normal values pass


def test_spot_alarms_and_does_not_learn_alarms():
    spot = thresholds.SPOT(risk=1e-3).fit(np.random.default_rng(1).normal(0, 1, 3000))
    first = spot.threshold
    assert 2.5 < first < 4.5
    assert all(spot.update(9.0) for _ in range(50)) and spot.threshold == first
    spot.update(float(np.quantile(np.random.default_rng(1).normal(0, 1, 3000), 0.99)))
    assert spot.threshold != first  # a normal peak refits the tail


def test_min_gap_of_two_keeps_every_other_row_of_a_run() -> None:
    assert alarms(np.ones(5), 0.5, min_gap=2).tolist() == [1, 0, 1, 0, 1]


def test_missing_scores_given_as_none_never_alarm_nor_count() -> None:
    # scores read back from JSON carry null where a detector gave no score
    assert alarms([0.9, None, 0.2], 0.5).tolist() == [1, 0, 0]
    config = ThresholdConfig(kind="quantile", quantile=1.0, reference=0.5)
    assert choose_threshold([0.1, None, 0.3, 0.9], config) == pytest.approx(0.1)
    labels = ThresholdConfig(kind="labels")
    assert choose_threshold([0.9, None, 0.1], labels, [1, 1, 0]) == pytest.approx(0.5)


def test_runs_treats_any_nonzero_flag_as_true() -> None:
    assert runs(np.array([0, 2, 1, 0, 0.5])) == [(1, 3), (4, 5)]


def test_alarm_metrics_without_alarms_or_without_anomalies_are_zero() -> None:
    silent = alarm_metrics(np.zeros(5), np.array([0, 1, 1, 0, 0]))
    assert silent["precision"] == 0.0 and silent["event_precision"] == 0.0  # nothing was right
    assert silent["recall"] == 0.0 and silent["event_recall"] == 0.0
    nothing_to_find = alarm_metrics(np.array([0, 1, 0, 0, 0]), np.zeros(5))
    assert nothing_to_find["recall"] == 0.0 and nothing_to_find["event_recall"] == 0.0
    assert nothing_to_find["precision"] == 0.0 and nothing_to_find["event_precision"] == 0.0


def test_alarm_metrics_at_the_first_row_and_across_a_label_change() -> None:
    found = alarm_metrics(np.array([1, 0, 0, 0]), np.array([1, 1, 0, 0]))  # event at row 0
    assert found["event_recall"] == 1.0 and found["event_precision"] == 1.0
    # a false alarm at row 0 is a false alarm run of its own
    assert alarm_metrics(np.array([1, 0, 1, 0]), np.array([0, 0, 1, 0]))[
        "event_precision"] == 0.5
    # one alarm run over a quiet stretch and then an event: one false run, one right run
    assert alarm_metrics(np.array([1, 1, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 0, 0]))[
        "event_precision"] == 0.5


def test_a_reference_share_under_one_row_is_the_first_row() -> None:
    config = ThresholdConfig(kind="quantile", quantile=1.0, reference=0.1)  # 0.4 of a row
    assert choose_threshold([0.2, 0.9, 0.9, 0.9], config) == pytest.approx(0.2)


def test_reference_end_with_a_utc_offset() -> None:
    config = ThresholdConfig(kind="quantile", quantile=1.0,
                             reference_end="2024-01-01 03:00+01:00")  # 02:00 UTC
    # naive timestamps are read as UTC; aware ones are compared as instants
    assert choose_threshold(TEN, config, timestamps=HOURS) == pytest.approx(0.2)
    assert choose_threshold(TEN, config, timestamps=HOURS.tz_localize("UTC")) == \
        pytest.approx(0.2)
    berlin = HOURS.tz_localize("Europe/Berlin")  # 03:00 in Berlin is 02:00 UTC
    assert choose_threshold(TEN, config, timestamps=berlin) == pytest.approx(0.3)


def test_labels_point_f1_can_alarm_every_row() -> None:
    # alarming all: TP 2 of 3 alarms (F1 0.8); from 0.3 up: TP 1 of 2 alarms (0.5)
    chosen = choose_threshold([0.1, 0.5, 0.6], ThresholdConfig(kind="labels"), [1, 1, 0])
    assert chosen == pytest.approx(0.1)


def test_event_f1_can_alarm_every_row_also_in_the_subset_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the event (row 15) scores below every other row but one (row 20, the lowest). Alarming
    # all: one false run each side of the event (precision 1/3, F1 0.5); sparing row 20
    # splits the false run after the event in two (precision 1/4, F1 0.4)
    scores = np.linspace(0.5, 1.0, 30)
    scores[15], scores[20] = 0.3, 0.1
    labels = np.zeros(30)
    labels[15] = 1
    config = ThresholdConfig(kind="labels", metric="event_f1")
    assert choose_threshold(scores, config, labels) == pytest.approx(0.1)
    monkeypatch.setattr(thresholds, "MAX_EVENT_CANDIDATES", 10)
    assert choose_threshold(scores, config, labels) == pytest.approx(0.1)


def test_event_search_on_a_long_series_finds_a_best_cut_below_every_event() -> None:
    # 2,400 quiet rows (distinct scores under 0.2: more candidates than the search takes),
    # ten one-row events at 0.70-0.74, and two false alarms, each two spikes (0.9) joined by
    # a bridge (0.55, 0.58) and padded by rows at 0.3-0.5. Cutting just under the events
    # leaves each false alarm as two runs (precision 10/14); cutting under the bridges joins
    # them (10/12, F1 10/11), and the padding makes that a stretch of equal cuts, none of them
    # at an event's best score: the evenly spread candidates must reach it
    rng = np.random.default_rng(0)
    quiet = rng.uniform(0, 0.2, 2400)
    padding = iter(rng.uniform(0.3, 0.5, 8))
    inserted = {200 * k + 100: [0.70 + 0.004 * k] for k in range(10)}
    for j, bridge in enumerate((0.55, 0.58)):
        inserted[200 * j + 200] = [next(padding), next(padding), 0.9, bridge, 0.9,
                                   next(padding), next(padding)]
    scores: list[float] = []
    labels: list[int] = []
    for i, value in enumerate(quiet):
        extra = inserted.get(i, [])
        scores += [*extra, value]
        labels += [int(len(extra) == 1)] * len(extra) + [0]
    chosen = choose_threshold(scores, ThresholdConfig(kind="labels", metric="event_f1"),
                              labels)
    assert 0.2 < chosen < 0.55
    assert alarm_metrics(alarms(scores, chosen), np.array(labels))["event_f1"] == \
        pytest.approx(10 / 11)


@pytest.mark.parametrize("tail", ["heavy", "three excesses"])
def test_pot_is_the_gpd_quantile_of_the_excesses(tail: str) -> None:
    from scipy.stats import genpareto

    if tail == "heavy":
        scores = genpareto.rvs(0.3, size=5000, random_state=np.random.default_rng(1))
    else:  # the fewest fitted: 148, 149, 150 over the 98% level, 147
        scores = np.arange(151.0)
    base = np.quantile(scores, 0.98)  # the default level
    excess = scores[scores > base] - base
    shape, _, scale = genpareto.fit(excess, floc=0.0)
    for risk in (1e-4, 1e-3):  # 1e-3: the default
        expected = base + genpareto.ppf(1 - risk * scores.size / excess.size, shape, 0.0, scale)
        assert pot_threshold(scores, risk=risk) == pytest.approx(expected, rel=1e-9)
    assert pot_threshold(scores) == pytest.approx(expected, rel=1e-9)


def test_pot_of_an_exponential_tail_is_the_exponential_quantile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a fitted shape of (nearly) 0 is the exponential limit, not a division by 0
    from scipy.stats import genpareto

    monkeypatch.setattr(genpareto, "fit", lambda data, floc: (0.0, floc, 2.0))
    scores = np.arange(1000.0)  # the 98% level: 979.02, with 20 values above it
    assert pot_threshold(scores, risk=1e-3) == pytest.approx(979.02 + 2.0 * np.log(20))


def test_pot_does_not_depend_on_the_unit_of_the_scores() -> None:
    scores = np.random.default_rng(0).exponential(1.0, 5000)
    assert pot_threshold(scores * 0.01, risk=1e-4) == \
        pytest.approx(0.01 * pot_threshold(scores, risk=1e-4), rel=1e-3)


def test_pot_without_a_tail_to_fit_is_the_largest_score() -> None:
    assert pot_threshold(np.arange(101.0)) == 100.0  # two values above the level (98.0)
    saturated = np.r_[np.linspace(0, 0.5, 90), np.ones(10)]  # ten equal excesses over 0.55
    assert pot_threshold(saturated, level=0.9) == 1.0
    assert pot_threshold(np.full(50, 0.3)) == 0.3  # nothing above the level
    assert pot_threshold([0.3, None, np.nan]) == 0.3  # one finite score
    with pytest.raises(OpError, match=r"^pot_threshold: no finite score$"):
        pot_threshold([np.nan, None])


@pytest.mark.parametrize(("risk", "level"), [(0.0, 0.98), (1.0, 0.98), (1e-3, 0.0),
                                             (1e-3, 1.0)])
def test_pot_risk_and_level_must_be_strictly_between_0_and_1(risk: float, level: float) -> None:
    with pytest.raises(OpError, match=rf"^pot_threshold: risk and level must be in \(0, 1\), "
                                      rf"got {risk}, {level}$"):
        pot_threshold(np.arange(100.0), risk=risk, level=level)


def test_spot_starts_as_pot() -> None:
    assert math.isnan(SPOT().threshold)  # no threshold before fit
    scores = np.random.default_rng(2).exponential(1.0, 3000)
    assert SPOT().fit([*scores, None, np.nan]).threshold == pot_threshold(scores)
    assert SPOT().fit(np.arange(101.0)).threshold == 100.0


def test_spot_learns_normal_values_as_pot_of_everything_seen() -> None:
    # the calibration batch streamed again, in increasing order (the last value refits the
    # tail), rounded so that the 98% level sits on repeated values and stays where it was
    calibration = np.round(np.random.default_rng(2).exponential(1.0, 1000), 1)
    spot = SPOT(risk=1e-4).fit(calibration)
    assert not any(spot.update(value) for value in np.sort(calibration))  # normal: learnt
    assert spot.threshold == pytest.approx(pot_threshold(np.r_[calibration, calibration],
                                                         risk=1e-4), rel=1e-9)
    before = spot.threshold
    assert spot.update(float("nan")) is False and spot.threshold == before


def test_spot_takes_its_largest_calibration_value_as_normal() -> None:
    spot = SPOT().fit(np.arange(101.0))  # too few excesses: the threshold is the largest, 100
    assert spot.update(100.5) is True
    assert spot.update(100.0) is False
