"""Attributions of every registered model kind: they add up to the prediction, the exact
(linear) ones equal ``coef * (x - background mean)``, and the sums by channel and by lag band
are the sums of the values they claim to be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml._exceptions import OpError
from amml.ops.base import StepContext
from amml.ops.explain.attribution import ModelExplainer, lag_bands
from amml.ops.explain.op import Explain
from amml.ops.models.contract import kind_names, make_model

LOOKBACK, HORIZON = 24, 4
RNG = np.random.default_rng(7)
BACKGROUND = RNG.normal(size=(12, LOOKBACK, 2))
WINDOWS = RNG.normal(size=(3, LOOKBACK, 2))
OPTIONS = {"patchtst": {"patch_len": 8, "stride": 4, "layers": 1}, "lstm": {"hidden": 8}}
EXPECTED_METHOD = {"linear": "linear", "naive": "linear", "seasonal_naive": "linear",
                   "nlinear": "linear", "dlinear": "linear", "rlinear": "gradient",
                   "patchtst": "gradient", "lstm": "gradient"}


def model_of(kind: str, outputs: tuple[str, ...] = ("a", "b")):
    model = make_model(kind, lookback=LOOKBACK, horizon=HORIZON, columns=["a", "b"],
                       outputs=list(outputs), season=6,
                       options=OPTIONS.get(kind, {}))
    model.reset(3)
    return model


@pytest.mark.parametrize("kind", kind_names())
def test_every_kind_is_explained_and_adds_up(kind: str) -> None:
    explainer = ModelExplainer(model_of(kind), BACKGROUND, nsamples=48)
    assert explainer.method == EXPECTED_METHOD.get(kind, explainer.method)
    e = explainer.explain(WINDOWS)
    assert e.values.shape == (3, LOOKBACK, 2, 2)
    total = e.base + e.values.sum(axis=(1, 2))
    spread = np.abs(e.prediction - e.base).max()
    # exact for affine models; expected gradients approximate it
    tolerance = 1e-9 if explainer.method == "linear" else 0.5 * spread + 1e-3
    assert np.abs(total - e.prediction).max() <= tolerance
    np.testing.assert_allclose(e.prediction, explainer.quantity(WINDOWS), atol=1e-5)
    np.testing.assert_allclose(e.by_channel().sum(axis=1), e.values.sum(axis=(1, 2)),
                               atol=1e-9)
    np.testing.assert_allclose(e.by_band().sum(axis=1), e.values.sum(axis=(1, 2)), atol=1e-9)


def test_linear_attributions_are_coefficients_times_distance_from_the_background() -> None:
    model = model_of("linear", outputs=("a",))
    explainer = ModelExplainer(model, BACKGROUND)
    e = explainer.explain(WINDOWS)
    # ridge on (x - last): weights w over the lookback, applied to channel a only
    w = model.weights[:LOOKBACK].mean(axis=1)
    coef_a = np.concatenate([w[:-1], [1.0 - w.sum() + w[-1]]])  # last value comes back
    expected = coef_a * (WINDOWS[:, :, 0] - BACKGROUND[:, :, 0].mean(axis=0))
    np.testing.assert_allclose(e.values[:, :, 0, 0], expected, atol=1e-9)
    assert np.all(e.values[:, :, 1, 0] == 0)  # channel b does not reach output a


def test_an_ignored_channel_gets_nothing_and_bands_cover_the_lags() -> None:
    model = model_of("naive", outputs=("b",))
    e = ModelExplainer(model, BACKGROUND).explain(WINDOWS)
    assert np.all(e.by_channel()[:, 0, 0] == 0)  # naive on b never reads a
    band = e.by_band()[:, :, 0]
    assert np.allclose(band[:, 1:], 0) and np.allclose(band[:, 0], e.values[:, -1, 1, 0])
    assert lag_bands(336) == [(1, 42), (43, 84), (85, 168), (169, 336)]
    assert lag_bands(10, [3, 7]) == [(1, 3), (4, 7), (8, 10)]


def test_kernel_fallback_adds_up_exactly() -> None:
    model = model_of("rlinear", outputs=("a",))
    e = ModelExplainer(model, BACKGROUND, method="kernel").explain(WINDOWS[:1])
    assert e.method == "kernel"
    np.testing.assert_allclose(e.base + e.values.sum(axis=(1, 2)), e.prediction, atol=1e-4)


def test_bad_requests_are_clear_errors() -> None:
    model = model_of("linear")
    with pytest.raises(OpError, match=r"background must be windows of shape \(N, 24, 2\)"):
        ModelExplainer(model, np.zeros((3, 10, 2)))
    with pytest.raises(OpError, match="step must be between 1 and the horizon 4"):
        ModelExplainer(model, BACKGROUND, step=9)
    with pytest.raises(OpError, match="not an affine map"):
        ModelExplainer(model_of("rlinear"), BACKGROUND, method="linear")
    with pytest.raises(OpError, match=r"expected windows of shape"):
        ModelExplainer(model, BACKGROUND).explain(np.zeros((1, 5, 2)))


def test_explain_op_writes_json_and_png() -> None:
    t = np.arange(300)
    table = pd.DataFrame({"a": np.sin(t / 5), "b": np.cos(t / 7)},
                         index=pd.date_range("2024-01-01", periods=300, freq="h"))
    model = model_of("linear", outputs=("b",))
    model.fit(np.stack([table.to_numpy()[i:i + LOOKBACK] for i in range(200)]),
              np.stack([table[["b"]].to_numpy()[i + LOOKBACK:i + LOOKBACK + HORIZON]
                        for i in range(200)]))
    scaler = {"b": {"offset": 10.0, "scale": 2.0}}
    out = Explain(windows=5, background=8).run(StepContext(), model, table, scaler)
    data = out["attributions"]
    assert data["method"] == "linear" and len(data["windows"]) == 5
    last = data["windows"][-1]
    assert last["window_end"].startswith("2024-01-13 11:00")
    total = last["base"]["b"] + sum(last["by_channel"]["b"].values())
    assert abs(total - last["prediction"]["b"]) < 1e-9
    assert abs(sum(last["by_lag_band"]["b"].values())
               - sum(last["by_channel"]["b"].values())) < 1e-9
    unscaled = model.predict_windows(table.to_numpy()[None, -LOOKBACK:])[0, :, 0].mean()
    assert abs(last["prediction"]["b"] - (unscaled * 2.0 + 10.0)) < 1e-9
    assert out["plot"][:8] == b"\x89PNG\r\n\x1a\n"
