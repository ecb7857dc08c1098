"""forecast_residual: catches what the forecaster did not expect, with numpy and PyTorch
forecasters, fitted online or handed over already fitted."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.models.forecaster import Forecaster

PERIOD = 48


def seasonal(n: int = 1500, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 0.2, n)


def streamed(detector, values) -> np.ndarray:
    stream = detector.clone()
    return np.array([stream.update(i, float(v)) for i, v in enumerate(values)])


@pytest.mark.parametrize("kind", ["linear", "seasonal_naive"])
def test_level_shift_is_caught_where_it_starts(kind):
    values = seasonal()
    values[1000:] += 2.5  # well inside the usual range of the series
    detector = make_detector("forecast_residual", forecaster=kind, season=PERIOD)
    scores = detector.score_series(values)
    assert int(np.nanargmax(scores[300:])) + 300 in range(1000, 1003)
    assert scores[1000:1003].max() > 0.9
    assert scores[300:990].max() < 0.75
    assert np.isnan(scores[:detector.warmup]).all()  # warm-up: no score, not 0


def test_out_of_phase_value_is_caught_where_a_value_detector_is_not():
    values = seasonal()
    trough = 1000 + 3 * PERIOD // 4 - 1000 % PERIOD  # a trough of the sine
    values[trough] = 13.0  # the level of a peak: a usual value at an unusual time
    residual = make_detector("forecast_residual").score_series(values)
    gaussian = make_detector("windowed_gaussian").score_series(values)
    assert int(np.nanargmax(residual[300:])) + 300 == trough and residual[trough] > 0.9
    assert int(np.nanargmax(gaussian[300:])) + 300 != trough


@pytest.mark.parametrize("params", [
    {"forecaster": "linear", "refit": 150, "history": 400},
    {"forecaster": "naive", "refit": 0},
    {"forecaster": "seasonal_naive", "season": PERIOD, "lookback": 8},
    {"forecaster": "linear", "scoring": "window", "threshold": 6.0},
])
def test_batch_equals_streaming_with_gaps_and_refits(params):
    values = seasonal(900, seed=3)
    values[[100, 250, 251, 600]] = [np.nan, np.inf, -np.inf, np.nan]
    values[700] += 5
    detector = make_detector("forecast_residual", **params)
    batch = detector.score_series(values)
    np.testing.assert_allclose(batch, streamed(detector, values), rtol=0, atol=1e-9)
    # a gap during the warm-up has no score; one after it is no anomaly
    gaps = batch[[100, 250, 251, 600]]
    assert np.isnan(gaps[0]) and np.nanmax(gaps[1:]) == 0.0
    scored = batch[np.isfinite(batch)]
    assert np.all((scored >= 0) & (scored <= 1)) and int(np.nanargmax(batch)) == 700
    first = int(np.argmax(np.isfinite(batch)))
    assert first >= 192 and np.isfinite(batch[first:]).all()


def test_prefitted_forecaster_is_wrapped_not_refitted():
    train = seasonal(800, seed=1)
    model = Forecaster("linear", lookback=PERIOD, horizon=4).fit(train)
    weights = model.weights.copy()
    values = seasonal(600, seed=2)
    values[400:] -= 2.0
    detector = make_detector("forecast_residual", model=model, warmup=10**6)
    scores = detector.score_series(values)
    # no fitting: scoring starts once a lookback window (and the statistics) are there,
    # long before the warmup the detector would have needed to fit a model itself
    assert np.isnan(scores[:PERIOD]).all() and np.nanmax(scores[PERIOD:200]) > 0.0
    assert int(np.nanargmax(scores)) == 400 and scores[400] > 0.9
    np.testing.assert_array_equal(model.weights, weights)
    np.testing.assert_allclose(scores, streamed(detector, values), rtol=0, atol=1e-9)
    assert detector.clone().get_params()["model"] is model


def test_deep_forecasters_fitted_online_and_prefitted():
    import torch  # a declared dependency: never skipped

    from amml.ops.models.contract import Training, make_model
    from amml.ops.models.forecaster import windows

    values = seasonal(700)
    values[550:] += 2.5
    detector = make_detector("forecast_residual", forecaster="nlinear", lookback=PERIOD,
                             warmup=300, refit=0, epochs=3, seed=7)
    scores = detector.score_series(values)
    assert int(np.nanargmax(scores[300:])) + 300 in range(550, 553) and scores[550] > 0.9
    np.testing.assert_allclose(scores, streamed(detector, values), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(scores, detector.score_series(values))  # seeded

    x, y = windows(seasonal(600, seed=5), 24, 1)
    model = make_model("nlinear", lookback=24, horizon=1, columns=["v"], outputs=["v"])
    model.reset(0)
    model.fit(x[:, :, None], y[:, :, None],
              training=Training(seed=0, epochs=5, lr=0.01, lr_schedule="constant",
                                patience=None, device="cpu"))
    before = {k: v.copy() for k, v in model.get_tensors().items()}
    wrapped = make_detector("forecast_residual", model=model).score_series(values)
    assert int(np.nanargmax(wrapped[200:])) + 200 in range(550, 553) and wrapped[550] > 0.9
    assert all(np.array_equal(v, before[k]) for k, v in model.get_tensors().items())
    assert next(model.net.parameters()).dtype == torch.float32  # the caller's net untouched


@pytest.mark.parametrize(("params", "message"), [
    ({"forecaster": "arima"}, "unknown forecaster 'arima'"),
    ({"lookback": 64, "warmup": 50}, "warmup .* must be at least lookback"),
    ({"refit": -1}, "refit must be >= 0"),
    ({"span": 0}, "span must be at least 1"),
    ({"model": object()}, "model must be a fitted Forecaster"),
    ({"scoring": "median"}, "scoring must be one of online, window"),
    ({"threshold": 0}, "threshold must be a finite number > 0"),
])
def test_bad_parameters_are_clear_errors(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("forecast_residual", **params)


def test_multi_column_deep_model_is_refused():
    from amml.ops.models.contract import make_model

    model = make_model("nlinear", lookback=16, horizon=1, columns=["a", "b"], outputs=["a", "b"])
    with pytest.raises(OpError, match="one input and output column"):
        make_detector("forecast_residual", model=model)
