"""SKAB's protocol and metrics on a small generated SKAB-layout folder: fit on the first 400
rows only, pooled point-wise F1/FAR/MAR, and leave-one-experiment-out picking on the others."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml.bench import skab
from amml.ops.detectors.base import make_detector

COLUMNS = ["Accelerometer1RMS", "Current", "Volume Flow RateRMS"]


def _experiment(path, seed: int, start: int, stop: int) -> None:
    rng = np.random.default_rng(seed)
    n = 700
    values = rng.normal(0, 1, (n, len(COLUMNS))) + np.array([0.0, 5.0, 32.0])
    labels = np.zeros(n)
    labels[start:stop] = 1
    values[start:stop, 2] -= 6.0  # the valve closes: the flow drops
    frame = pd.DataFrame(values, columns=COLUMNS)
    frame.insert(0, "datetime", pd.date_range("2020-03-09", periods=n, freq="s"))
    frame["anomaly"] = labels
    frame["changepoint"] = 0.0
    frame.to_csv(path, sep=";", index=False)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "valve1").mkdir()
    for k, (start, stop) in enumerate([(450, 600), (500, 650), (420, 520)]):
        _experiment(tmp_path / "valve1" / f"{k}.csv", k, start, stop)
    return tmp_path


def test_load_and_protocol_fit_on_the_first_400_rows_only(folder):
    experiments = skab.load_experiments(folder)
    assert [e.name for e in experiments] == ["valve1/0", "valve1/1", "valve1/2"]
    experiment = experiments[0]
    scores = skab.protocol_scores(make_detector("pca_t2q"), experiment)
    assert len(scores) == 300
    # the test part cannot change what was fitted: poisoning it leaves the first rows' scores
    poisoned = skab.Experiment(experiment.name, experiment.values.copy(), experiment.labels,
                               experiment.columns)
    poisoned.values[650:] += 100.0
    again = skab.protocol_scores(make_detector("pca_t2q"), poisoned)
    np.testing.assert_array_equal(again[:250], scores[:250])
    alarms = skab.alarms_at(scores)
    m = skab.binary_metrics([alarms], [experiment.test_labels])
    assert m["f1"] > 0.9 and m["far"] < 0.05


def test_metrics_by_hand():
    m = skab.binary_metrics([np.array([1, 1, 0]), np.array([0, 0, 1])],
                            [np.array([1, 0, 0]), np.array([1, 1, 1])])
    # tp=2, fp=1, fn=2, tn=1
    assert (m["f1"], m["far"], m["mar"]) == (4 / 7, 0.5, 0.5)


def test_leave_one_out_picks_on_the_others(folder):
    experiments = skab.load_experiments(folder)
    labels = [e.test_labels for e in experiments]
    perfect = [y.astype(bool) for y in labels]
    # "all_but_k": right on every experiment but k, where it alarms exactly wrongly
    alarms = {f"all_but_{k}": [~p if i == k else p for i, p in enumerate(perfect)]
              for k in range(3)}
    _, metrics = skab.in_sample(alarms, experiments, max_far=1.0)
    held, picked = skab.leave_one_out(alarms, experiments, max_far=1.0)
    # held out, experiment k gets the set that is perfect on the others: the one wrong on k
    assert picked == ["all_but_0", "all_but_1", "all_but_2"]
    assert held["f1"] == 0.0 < metrics["f1"]


def test_pick_respects_the_false_alarm_cap():
    candidates = {"a": {"f1": 0.9, "far": 0.3}, "b": {"f1": 0.8, "far": 0.1}}
    assert skab.pick(candidates, 0.15) == "b" and skab.pick(candidates, 0.5) == "a"
    assert skab.pick({"a": {"f1": 0.9, "far": 0.3}, "b": {"f1": 0.1, "far": 0.2}}, 0.1) == "b"
