"""NAB scorer on small hand-computed cases (one series of 100 rows, probation 15 rows)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from amml.bench.nab import (
    MAX_TP,
    STANDARD_PROFILES,
    probationary_length,
    scaled_sigmoid,
    score_corpus,
    window_labels,
)

TS = pd.date_range("2021-01-01", periods=100, freq="5min")
WINDOWS = {"cat/a.csv": [(TS[60], TS[69])]}  # rows 60..69, width 10
STD = {"standard": STANDARD_PROFILES["standard"]}


def ss(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def run(points: dict[int, float], windows=WINDOWS, profiles=STD):
    scores = np.zeros(len(TS))
    for row, value in points.items():
        scores[row] = value
    frame = pd.DataFrame({"timestamp": TS.strftime("%Y-%m-%d %H:%M:%S"), "anomaly_score": scores})
    return score_corpus({"cat/a.csv": frame}, windows, profiles)


def test_helpers_match_nab():
    assert abs(MAX_TP - 0.9866142981514303) < 1e-12
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert float(scaled_sigmoid(3.5)) == -1.0
    assert probationary_length(100) == 15
    assert probationary_length(10_000) == 750
    labels = window_labels(TS.strftime("%Y-%m-%d %H:%M:%S"), WINDOWS["cat/a.csv"])
    assert labels.sum() == 10 and labels[60] == 1 and labels[59] == 0 and labels[70] == 0


def test_detection_at_window_start_is_perfect():
    result = run({60: 1.0})["standard"]
    assert result["raw"] == pytest.approx(1.0)
    assert result["threshold"] == 1.0
    assert result["null"] == -1.0 and result["perfect"] == 1.0
    assert result["score"] == pytest.approx(100.0)


def test_detection_in_the_middle_and_at_the_end():
    middle = run({65: 1.0})["standard"]  # position -(69 - 65 + 1) / 10 = -0.5
    assert middle["raw"] == pytest.approx(ss(-0.5) / MAX_TP)
    assert middle["score"] == pytest.approx(100 * (ss(-0.5) / MAX_TP + 1) / 2)
    end = run({69: 1.0})["standard"]  # position -0.1
    assert end["raw"] == pytest.approx(ss(-0.1) / MAX_TP)


def test_only_the_earliest_detection_in_a_window_counts():
    result = run({62: 1.0, 65: 1.0, 69: 1.0})["standard"]
    assert result["raw"] == pytest.approx(ss(-0.8) / MAX_TP)


def test_false_positive_after_the_window_decays():
    # row 74: (74 - 69) / (10 - 1) past the window end; the TP at 60 makes detecting worth it
    result = run({60: 1.0, 74: 1.0})["standard"]
    assert result["raw"] == pytest.approx(1.0 + 0.11 * ss(5 / 9))
    far = run({60: 1.0, 99: 1.0})["standard"]  # (99 - 69) / 9 > 3: a full false positive
    assert far["raw"] == pytest.approx(1.0 - 0.11)


def test_false_positive_before_any_window_costs_fp_weight():
    result = run({30: 1.0, 60: 1.0})["standard"]
    assert result["raw"] == pytest.approx(1.0 - 0.11)
    low_fp = run({30: 1.0, 60: 1.0}, profiles={"p": STANDARD_PROFILES["reward_low_FP_rate"]})
    assert low_fp["p"]["raw"] == pytest.approx(1.0 - 0.22)


def test_missed_window_costs_fn_weight_and_null_scores_zero():
    none = run({})["standard"]
    assert none["raw"] == -1.0 and none["threshold"] == 1.1 and none["score"] == 0.0
    low_fn = run({}, profiles={"p": STANDARD_PROFILES["reward_low_FN_rate"]})["p"]
    assert low_fn["raw"] == -2.0 and low_fn["null"] == -2.0 and low_fn["score"] == 0.0
    # a lone false positive is never worth it: the sweep keeps "no detection"
    fp_only = run({80: 1.0})["standard"]
    assert fp_only["raw"] == -1.0 and fp_only["score"] == 0.0


def test_probationary_rows_are_ignored():
    result = run({10: 1.0, 60: 1.0})["standard"]  # row 10 < 15: not a false positive
    assert result["raw"] == pytest.approx(1.0)
    # a window wholly in the probationary period is no false negative (NAB), but NAB's
    # perfect score still counts it
    windows = {"cat/a.csv": [(TS[5], TS[9]), (TS[60], TS[69])]}
    result = run({}, windows=windows)["standard"]
    assert result["raw"] == -1.0 and result["null"] == -1.0 and result["perfect"] == 2.0


def test_the_first_row_after_the_probationary_period_is_scored():
    """NAB ignores rows [0, probation): the row at index ``probation`` already counts."""
    edge = probationary_length(100)
    assert run({edge - 1: 1.0, 60: 1.0})["standard"]["raw"] == pytest.approx(1.0)
    assert run({edge: 1.0, 60: 1.0})["standard"]["raw"] < 1.0


def test_threshold_sweep_picks_the_best_threshold():
    # thresholds: 1.1 -> -1, 0.9 -> -1.11, 0.8 -> 0.89, 0.5 -> 0.78, 0 -> far worse
    result = run({30: 0.9, 60: 0.8, 40: 0.5})["standard"]
    assert result["threshold"] == 0.8
    assert result["raw"] == pytest.approx(0.89)


def test_corpus_sweep_uses_one_threshold_and_per_category_breakdown():
    frame_a = pd.DataFrame({"timestamp": TS, "anomaly_score": 0.0})
    frame_a.loc[60, "anomaly_score"] = 0.7
    frame_b = pd.DataFrame({"timestamp": TS, "anomaly_score": 0.0})
    frame_b.loc[60, "anomaly_score"] = 0.6
    frame_b.loc[30, "anomaly_score"] = 0.65
    windows = {"x/a.csv": [(TS[60], TS[69])], "y/b.csv": [(TS[60], TS[69])]}
    result = score_corpus({"x/a.csv": frame_a, "y/b.csv": frame_b}, windows, STD)["standard"]
    # 0.7 -> 1 - 1 = 0; 0.65 -> -0.11; 0.6 -> 2 - 0.11 = 1.89
    assert result["threshold"] == 0.6 and result["raw"] == pytest.approx(1.89)
    assert result["score"] == pytest.approx(100 * (1.89 + 2) / 4)
    assert result["per_category"]["x"]["raw"] == pytest.approx(1.0)
    assert result["per_category"]["x"]["score"] == pytest.approx(100.0)
    assert result["per_category"]["y"]["raw"] == pytest.approx(0.89)


def test_leave_one_category_out_uses_the_other_categories_threshold():
    from amml.bench.nab import STANDARD_PROFILES, score_corpus, score_corpus_loco

    ts = pd.date_range("2020-01-01", periods=200, freq="min")
    windows = {"a/x.csv": [(ts[100], ts[119])], "b/y.csv": [(ts[100], ts[119])]}
    low = pd.DataFrame({"timestamp": ts, "anomaly_score": 0.0})
    low.loc[100, "anomaly_score"] = 0.3  # category a finds its window at 0.3...
    high = pd.DataFrame({"timestamp": ts, "anomaly_score": 0.0})
    high.loc[100, "anomaly_score"] = 0.9  # ...b at 0.9, with a false alarm at 0.4
    high.loc[170, "anomaly_score"] = 0.4
    results = {"a/x.csv": low, "b/y.csv": high}
    profiles = {"standard": STANDARD_PROFILES["standard"]}
    whole = score_corpus(results, windows, profiles)["standard"]
    loco = score_corpus_loco(results, windows, profiles)["standard"]
    assert loco["thresholds"] == {"a": 0.9, "b": 0.3}
    # a held out at b's threshold misses its window; b at a's threshold raises its false alarm
    assert loco["score"] < whole["score"]
