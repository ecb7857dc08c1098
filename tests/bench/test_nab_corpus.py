"""NAB's corpus layout in and out: reading ``data/`` and ``labels/``, cost profiles, and the
result files NAB's own scorer reads (``amml bench nab --score-results`` reads them back)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from amml.bench.nab import (
    STANDARD_PROFILES,
    load_corpus,
    load_profiles,
    window_labels,
    write_results,
)


def _write_corpus(root, with_labels: bool = True):
    ts = pd.date_range("2021-03-01", periods=20, freq="5min")
    for category, file, offset in (("realA", "one.csv", 0.0), ("realB", "two.csv", 10.0)):
        folder = root / "data" / category
        folder.mkdir(parents=True)
        frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"),
                              "value": np.arange(20) + offset, "extra": 1})
        frame.to_csv(folder / file, index=False)
    (root / "data" / "notes.csv").write_text("timestamp,value\n")  # not in a category folder
    if with_labels:
        (root / "labels").mkdir()
        windows = {"realA/one.csv": [["2021-03-01 00:20:00", "2021-03-01 00:30:00"]],
                   "realB/two.csv": [], "elsewhere/three.csv": [["2021-01-01", "2021-01-02"]]}
        (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return ts


def test_load_corpus_reads_each_category_file_with_its_windows(tmp_path):
    ts = _write_corpus(tmp_path)
    corpus = load_corpus(tmp_path)
    assert corpus.root == tmp_path
    assert list(corpus.series) == ["realA/one.csv", "realB/two.csv"]
    one = corpus.series["realA/one.csv"]
    assert list(one.columns) == ["timestamp", "value"]
    assert one["timestamp"].iloc[0] == "2021-03-01 00:00:00"  # kept as NAB's text
    assert one["value"].tolist() == list(range(20))
    assert corpus.series["realB/two.csv"]["value"].iloc[0] == 10
    assert corpus.windows == {
        "realA/one.csv": [(ts[4], ts[6])],
        "realB/two.csv": [],
    }  # windows of files not in data/ are not kept
    assert isinstance(corpus.windows["realA/one.csv"][0][0], pd.Timestamp)
    assert corpus.n_windows == 1


def test_load_corpus_without_labels_has_no_windows(tmp_path):
    _write_corpus(tmp_path, with_labels=False)
    corpus = load_corpus(str(tmp_path))
    assert corpus.windows == {"realA/one.csv": [], "realB/two.csv": []}
    assert corpus.n_windows == 0


def test_load_corpus_refuses_a_folder_without_data(tmp_path):
    (tmp_path / "labels").mkdir()
    with pytest.raises(FileNotFoundError, match="not a NAB-layout folder"):
        load_corpus(tmp_path)


def test_load_profiles_defaults_to_nabs_and_reads_a_config_file(tmp_path):
    default = load_profiles()
    assert default == STANDARD_PROFILES
    default["standard"]["fpWeight"] = 9.0  # a copy: the module's table is untouched
    assert STANDARD_PROFILES["standard"]["fpWeight"] == 0.11
    assert load_profiles(tmp_path / "missing.json") == STANDARD_PROFILES
    config = tmp_path / "profiles.json"
    config.write_text(json.dumps({
        "strict": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 3.0, "fpWeight": 0.5,
                                  "tnWeight": 1.0}},
        "flat": {"tpWeight": 2.0, "fnWeight": 1.0, "fpWeight": 0.1, "tnWeight": 1.0},
    }))
    profiles = load_profiles(config)
    assert profiles == {"strict": {"tpWeight": 1.0, "fnWeight": 3.0, "fpWeight": 0.5,
                                   "tnWeight": 1.0},
                        "flat": {"tpWeight": 2.0, "fnWeight": 1.0, "fpWeight": 0.1,
                                 "tnWeight": 1.0}}


def test_window_labels_cover_both_ends_of_each_window():
    ts = pd.date_range("2021-03-01", periods=12, freq="h")
    labels = window_labels(ts.strftime("%Y-%m-%d %H:%M:%S"),
                           [(ts[2], ts[4]), (ts[9], ts[9]),
                            (pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02"))])
    assert labels.dtype == np.int64
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0]
    between = window_labels(ts, [(ts[2] + pd.Timedelta("30min"), ts[4] - pd.Timedelta("1min"))])
    assert between.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_write_results_uses_nabs_layout_and_columns(tmp_path):
    ts = pd.date_range("2021-03-01", periods=6, freq="h")
    frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"),
                          "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    path = write_results(tmp_path / "out", "amml", "realA/one.csv", frame,
                         np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.125]), [(ts[3], ts[4])])
    assert path == tmp_path / "out" / "amml" / "realA" / "amml_one.csv"
    written = pd.read_csv(path)
    assert list(written.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert written["timestamp"].tolist() == frame["timestamp"].tolist()
    assert written["value"].tolist() == frame["value"].tolist()
    assert written["anomaly_score"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 0.125]
    assert written["label"].tolist() == [0, 0, 0, 1, 1, 0]
    again = write_results(tmp_path / "out", "amml", "realA/one.csv", frame, np.zeros(6), [])
    assert again == path and pd.read_csv(path)["label"].sum() == 0  # rewritten in place
