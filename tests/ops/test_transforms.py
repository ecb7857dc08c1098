"""Preprocessing ops: resample, align, fill, clip, scale, difference, features, windows, split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml import OpError, Workflow, compile_workflow, ops, run_workflow
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import Store


def _hourly(values, start: str = "2024-01-01") -> pd.DataFrame:
    return pd.DataFrame({"x": np.asarray(values, dtype=float)},
                        index=pd.date_range(start, periods=len(values), freq="h"))


def test_resample_aggregates_and_reports_empty_intervals() -> None:
    frame = _hourly(range(48))
    out = ops.resample(frame, freq="6h", agg="max")
    assert out["x"].tolist() == [5, 11, 17, 23, 29, 35, 41, 47]
    per = ops.resample(frame.assign(y=1.0), freq="1D", agg="mean", per_column={"y": "sum"})
    assert per["y"].tolist() == [24.0, 24.0] and per["x"].tolist() == [11.5, 35.5]
    with pytest.raises(OpError, match="time index"):
        ops.resample(frame.reset_index(drop=True), freq="1h")


def test_align_joins_series_and_prefixes_clashing_names() -> None:
    a = _hourly(range(10))
    b = _hourly(range(5), start="2024-01-01 03:00")
    inner = ops.align(tables=[a, b], names=["a", "b"])
    assert list(inner.columns) == ["a_x", "b_x"] and len(inner) == 5
    outer = ops.align(tables=[a, b], how="outer")
    assert len(outer) == 10 and outer["s1_x"].isna().sum() == 5


def test_fill_methods() -> None:
    frame = _hourly([1, np.nan, 3, np.nan, np.nan, 6])
    assert ops.fill(frame, method="ffill")["x"].tolist() == [1, 1, 3, 3, 3, 6]
    assert ops.fill(frame, method="linear")["x"].tolist() == [1, 2, 3, 4, 5, 6]
    season = _hourly([1, 2, 3] * 4)
    season.iloc[[7, 10], 0] = np.nan
    filled = ops.fill(season, method="seasonal", period=3)
    assert filled["x"].tolist() == [1, 2, 3] * 4


def test_clip_learns_limits_on_the_training_part_only() -> None:
    train = _hourly(np.r_[np.random.default_rng(0).normal(0, 1, 500)])
    test = _hourly([0.0, 50.0, -50.0])
    result = ops.clip(test, train, method="sigma", k=3)
    low, high = result["limits"]["x"]
    assert result["out"]["x"].tolist() == [0.0, high, low]
    assert -4 < low < -2 and 2 < high < 4


def test_scale_fits_on_train_and_applies_the_same_to_test() -> None:
    frame = make_sensor_frame(periods=400, seed=1)
    train, test = frame.iloc[:300], frame.iloc[300:]
    fitted = ops.scale(train, method="robust", exclude=["is_anomaly"])
    scaler = fitted["scaler"]
    assert set(scaler) == {"temperature", "vibration", "load"}
    applied = ops.scale(test, scaler=scaler)["out"]
    expected = (test["load"] - scaler["load"]["offset"]) / scaler["load"]["scale"]
    pd.testing.assert_series_equal(applied["load"], expected)
    restored = ops.scale(applied, scaler=scaler, inverse=True)["out"]
    np.testing.assert_allclose(restored["temperature"], test["temperature"])
    # fitting on train only: the test part's own statistics play no role
    assert scaler["temperature"]["offset"] == pytest.approx(
        float(np.median(train["temperature"])))


def test_difference_and_features_look_backwards_only() -> None:
    frame = _hourly(np.arange(30.0) ** 2)
    diff = ops.difference(frame, lag=1, order=2)
    assert set(diff["x"].round(6)) == {2.0} and len(diff) == 28
    feats = ops.features(frame, lags=[1, 24], rolling=[3], stats=["mean"],
                         calendar=["hour", "is_weekend"])
    assert list(feats.columns) == ["x", "x_lag1", "x_lag24", "x_roll3_mean", "hour",
                                   "is_weekend"]
    row = feats.iloc[0]  # the first row with a full history: t = 24
    assert row["x_lag24"] == 0.0 and row["x_roll3_mean"] == pytest.approx((22**2 + 23**2
                                                                          + 24**2) / 3)
    assert row["hour"] == 0 and len(feats) == 6


def test_windows_cover_every_position_without_dropping_the_last() -> None:
    frame = _hourly(np.arange(20.0)).assign(y=lambda t: t["x"] * 10)
    out = ops.windows(frame, lookback=5, horizon=3, targets=["y"])
    assert out["x"].shape == (13, 5, 2) and out["y"].shape == (13, 3, 1)
    assert out["y"][-1, :, 0].tolist() == [170.0, 180.0, 190.0]
    strided = ops.windows(frame, lookback=5, horizon=3, stride=4)
    assert strided["x"].shape[0] == 4
    with pytest.raises(OpError, match="fewer than lookback"):
        ops.windows(frame.iloc[:5], lookback=5, horizon=3)


def test_ett_split_matches_the_literature_borders() -> None:
    # ETTh1 has 17,420 hourly rows; the reference loaders use 12/4/4 months of 30 days
    frame = _hourly(np.arange(17420.0), start="2016-07-01")
    parts = ops.split(frame, mode="ett", overlap=336)
    month = 30 * 24
    assert parts["train"]["x"].iloc[[0, -1]].tolist() == [0, 12 * month - 1]
    assert parts["val"]["x"].iloc[[0, -1]].tolist() == [12 * month - 336, 16 * month - 1]
    assert parts["test"]["x"].iloc[[0, -1]].tolist() == [16 * month - 336, 20 * month - 1]
    quarter = _hourly(np.arange(17420.0 * 4), start="2016-07-01").resample("15min").first()
    assert len(ops.split(quarter.iloc[:69680], mode="ett")["train"]) == 12 * month * 4
    with pytest.raises(OpError, match="needs 14400 rows"):
        ops.split(frame.iloc[:1000], mode="ett")


def test_split_by_dates() -> None:
    frame = _hourly(np.arange(72.0))
    parts = ops.split(frame, mode="dates", val_start="2024-01-02", test_start="2024-01-03",
                      overlap=2)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [24, 26, 26]


def test_preprocessing_chain_in_a_workflow(store: Store) -> None:
    with Workflow("chain") as wf:
        raw = ops.source.synthetic(periods=600, seed=3)
        hourly = ops.resample(raw, freq="2h", agg="mean")
        filled = ops.fill(hourly, method="seasonal", period=12)
        parts = ops.split(filled, train=0.6, val=0.2, overlap=24)
        scaled_train = ops.scale(parts["train"], method="zscore", exclude=["is_anomaly"])
        ops.scale(parts["test"], scaler=scaled_train["scaler"], name="scaled_test")
        ops.windows(scaled_train, lookback=24, horizon=6, targets=["temperature"],
                    name="train_windows")
    result = run_workflow(compile_workflow(wf), store=store)
    assert result.count("ran") == 7
    assert result.output("train_windows", "x").shape[1:] == (24, 4)


def _train_then_shifted(rows: int = 100, tail: int = 100) -> pd.DataFrame:
    """A training part around 0 followed by a part around 1000: any statistic that sees the
    second part moves far."""
    rng = np.random.default_rng(3)
    return _hourly(np.r_[rng.normal(0, 1, rows), rng.normal(1000, 5, tail)])


def test_preprocess_fits_its_scaler_on_the_fit_fraction_only() -> None:
    frame = _train_then_shifted()
    result = ops.preprocess(frame, scale="zscore", fit_fraction=0.5, fill="none")
    train = frame["x"].iloc[:100]
    assert result["scaler"]["x"]["offset"] == pytest.approx(float(train.mean()))
    assert result["scaler"]["x"]["scale"] == pytest.approx(float(train.std(ddof=0)), rel=1e-6)
    # the training part comes out standardised; the rest keeps its distance
    scaled = result["out"]["x"]
    assert abs(scaled.iloc[:100].mean()) < 1e-9 and scaled.iloc[100:].mean() > 500


def test_preprocess_clips_with_limits_from_the_fit_fraction_only() -> None:
    frame = _train_then_shifted()
    clipped = ops.preprocess(frame, clip_sigma=3, fit_fraction=0.5, fill="none")["out"]["x"]
    train = frame["x"].iloc[:100]
    high = float(train.mean() + 3 * train.std(ddof=0))
    assert clipped.iloc[100:].max() == pytest.approx(high)


def test_scale_fits_on_its_fit_input_or_the_leading_fit_fraction() -> None:
    frame = _train_then_shifted()
    train = frame.iloc[:100]
    by_input = ops.scale(frame, fit=train, method="zscore")["scaler"]["x"]
    by_fraction = ops.scale(frame, method="zscore", fit_fraction=0.5)["scaler"]["x"]
    for scaler in (by_input, by_fraction):
        assert scaler["offset"] == pytest.approx(float(train["x"].mean()))
        assert scaler["scale"] == pytest.approx(float(train["x"].std(ddof=0)), rel=1e-6)
    # and without either, the whole table
    whole = ops.scale(frame, method="zscore")["scaler"]["x"]
    assert whole["offset"] == pytest.approx(float(frame["x"].mean()))
