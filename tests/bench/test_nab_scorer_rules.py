"""More NAB scorer rules on hand-computed cases: windows that follow each other, the null
detector as the better of "never" and "always", per-category sums, NAB's nested CostMatrix
profiles, ties and the sigmoid's cut-off (``test_nab_scorer.py`` has the basic cases)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from amml.bench.nab import (
    MAX_TP,
    STANDARD_PROFILES,
    scaled_sigmoid,
    score_corpus,
    score_corpus_loco,
    write_results,
)

TS = pd.date_range("2021-01-01", periods=100, freq="5min")
STD = {"standard": STANDARD_PROFILES["standard"]}


def ss(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def frame(points: dict[int, float], fill: float = 0.0) -> pd.DataFrame:
    scores = np.full(len(TS), fill)
    for row, value in points.items():
        scores[row] = value
    return pd.DataFrame({"timestamp": TS.strftime("%Y-%m-%d %H:%M:%S"), "anomaly_score": scores})


def test_the_sigmoid_is_cut_off_only_beyond_three() -> None:
    assert float(scaled_sigmoid(3.0)) == pytest.approx(ss(3.0), abs=0)
    assert float(scaled_sigmoid(3.0)) > -1.0
    assert float(scaled_sigmoid(3.0001)) == -1.0


def test_false_positives_between_and_after_three_windows() -> None:
    # windows rows 20..29, 40..49 and 70..79 (width 10); all six detections count at 1
    windows = {"c/a.csv": [(TS[20], TS[29]), (TS[40], TS[49]), (TS[70], TS[79])]}
    points = {20: 1.0, 40: 1.0, 60: 1.0, 75: 1.0, 85: 1.0, 33: 1.0}
    result = score_corpus({"c/a.csv": frame(points)}, windows, STD)["standard"]
    expected = (1.0 + 1.0                        # the first two windows, at their first rows
                + 0.11 * ss((33 - 29) / 9)       # between the first two: from the first
                + 0.11 * ss((60 - 49) / 9)       # between the last two: from the second
                + ss(-(79 - 75 + 1) / 10) / MAX_TP  # inside the third window
                + 0.11 * ss((85 - 79) / 9))      # after the last window
    assert result["threshold"] == 1.0
    assert result["raw"] == pytest.approx(expected)


def test_right_after_a_window_and_a_two_row_window() -> None:
    windows = {"c/a.csv": [(TS[40], TS[41])]}  # width 2: NAB divides by width - 1 = 1
    result = score_corpus({"c/a.csv": frame({40: 1.0, 42: 1.0, 43: 1.0})}, windows,
                          STD)["standard"]
    assert result["raw"] == pytest.approx(1.0 + 0.11 * ss(1 / 1) + 0.11 * ss(2 / 1))


@pytest.mark.parametrize("window", [(15, 59), (15, 89), (50, 99)])
def test_the_null_detector_is_the_better_of_never_and_always(window: tuple[int, int]) -> None:
    windows = {"c/a.csv": [(TS[window[0]], TS[window[1]])]}
    always = score_corpus({"c/a.csv": frame({}, fill=1.0)}, windows, STD)["standard"]
    never = score_corpus({"c/a.csv": frame({})}, windows, STD)["standard"]
    assert always["null"] == never["null"] == max(always["raw"], never["raw"])
    assert always["score"] == pytest.approx(0.0) and never["score"] == pytest.approx(0.0)


def test_a_window_filling_every_counted_row_makes_always_the_null() -> None:
    windows = {"c/a.csv": [(TS[15], TS[95])]}
    result = score_corpus({"c/a.csv": frame({}, fill=1.0)}, windows, STD)["standard"]
    after = sum(0.11 * ss((i - 95) / 80) for i in range(96, 100))
    assert result["null"] == pytest.approx(1.0 + after)  # every row detected: TP + the FPs
    assert result["null"] > -1.0  # better than never detecting


def test_categories_add_up_their_files() -> None:
    windows = {"a/one.csv": [(TS[40], TS[49])], "a/two.csv": [(TS[60], TS[69])],
               "b/three.csv": [(TS[10], TS[12]), (TS[50], TS[59])]}
    results = {"a/one.csv": frame({40: 1.0}), "a/two.csv": frame({64: 1.0}),
               "b/three.csv": frame({50: 1.0})}
    out = score_corpus(results, windows, STD)["standard"]
    assert out["threshold"] == 1.0
    a, b = out["per_category"]["a"], out["per_category"]["b"]
    assert (a["files"], a["windows"], a["perfect"], a["null"]) == (2, 2, 2.0, -2.0)
    assert a["raw"] == pytest.approx(1.0 + ss(-0.6) / MAX_TP)
    # b's first window sits in the probationary period: it exists but is not counted
    assert (b["files"], b["windows"], b["perfect"], b["null"]) == (1, 2, 2.0, -1.0)
    assert b["raw"] == pytest.approx(1.0)
    assert a["score"] == pytest.approx(100 * (a["raw"] + 2.0) / 4.0)
    assert out["perfect"] == 4.0 and out["raw"] == pytest.approx(a["raw"] + b["raw"])


def test_nabs_nested_cost_matrix_reads_like_a_flat_profile() -> None:
    windows = {"c/a.csv": [(TS[40], TS[49])]}
    results = {"c/a.csv": frame({42: 0.9, 80: 0.7})}
    flat = score_corpus(results, windows, STD)["standard"]
    nested = score_corpus(results, windows,
                          {"standard": {"CostMatrix": STANDARD_PROFILES["standard"]}})["standard"]
    assert nested["raw"] == flat["raw"] and nested["threshold"] == flat["threshold"]
    loco = score_corpus_loco(results, windows,
                             {"standard": {"CostMatrix": STANDARD_PROFILES["standard"]}})
    assert loco["standard"]["score"] == pytest.approx(
        score_corpus_loco(results, windows, STD)["standard"]["score"])


def test_equal_scores_are_one_threshold() -> None:
    windows = {"c/a.csv": [(TS[40], TS[49])]}
    # three rows tie at 0.5: a threshold cannot split them, so the FP at 80 comes with the TP
    result = score_corpus({"c/a.csv": frame({45: 0.5, 80: 0.5, 30: 0.5})}, windows,
                          STD)["standard"]
    assert result["threshold"] == 0.5
    # 30: before any window (-0.11); 80: (80 - 49) / 9 > 3 past it, a full false positive
    assert result["raw"] == pytest.approx(ss(-0.5) / MAX_TP - 0.11 - 0.11)


def test_warm_up_rows_are_written_as_zero(tmp_path) -> None:
    data = pd.DataFrame({"timestamp": TS[:4].strftime("%Y-%m-%d %H:%M:%S"), "value": [1, 2, 3, 4]})
    path = write_results(tmp_path, "amml", "c/a.csv", data, np.array([np.nan, np.nan, 0.5, 1.0]),
                         [])
    assert pd.read_csv(path)["anomaly_score"].tolist() == [0.0, 0.0, 0.5, 1.0]
