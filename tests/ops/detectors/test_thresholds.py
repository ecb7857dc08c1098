"""Thresholds on hand-computed cases: fixed, quantile of a reference period, best F1 on labels
(points and events), and the alarm series with ``min_gap``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from amml._exceptions import OpError
from amml.ops.detectors import thresholds
from amml.ops.detectors.thresholds import (
    ThresholdConfig,
    alarm_metrics,
    alarms,
    choose_threshold,
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
    with pytest.raises(OpError, match="'reference_end' needs timestamps"):
        choose_threshold(TEN, config)
    early = ThresholdConfig(kind="quantile", reference_end="2023-12-31")
    with pytest.raises(OpError, match="no row at or before reference_end"):
        choose_threshold(TEN, early, timestamps=HOURS)
    with pytest.raises(OpError, match="is not a timestamp"):
        choose_threshold(TEN, ThresholdConfig(kind="quantile", reference_end="soon"),
                         timestamps=HOURS)


def test_quantile_reference_without_finite_scores_fails() -> None:
    with pytest.raises(OpError, match="no finite scores"):
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
    with pytest.raises(OpError, match="needs a label column"):
        choose_threshold(TEN, config)
    with pytest.raises(OpError, match="marks no anomaly"):
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
