"""The evaluation plot draws what its axis says: original units when the scaler is given,
the model's units (and an axis that says so) otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amml.ops.base import StepContext
from amml.ops.models.train import Evaluate, Train, make_windows, plot_panels
from amml.ops.sources.synthetic import make_sensor_frame
from amml.ops.transforms.scaling import Scaler


def test_evaluation_plot_is_in_original_units_when_the_scaler_is_given() -> None:
    raw = make_sensor_frame(periods=400, seed=4)[["temperature", "load"]]
    scaler = Scaler.fit(raw, "zscore")
    scaled = scaler.transform(raw)
    model = Train(model="linear", target="temperature", lookback=24, horizon=6
                  ).run(StepContext(), scaled.iloc[:300])
    test = scaled.iloc[250:]
    x, y = make_windows(test, model.columns, model.outputs, 24, 6)
    pred = model.predict_windows(x)

    panels = plot_panels(test, pred, y, 0, "temperature", 24, 3, scaler.to_json())
    original = raw["temperature"].iloc[250:].to_numpy()
    first = panels[0]
    assert first.label == "temperature (original units)"
    np.testing.assert_allclose(first.history, original[:24], atol=1e-9)
    np.testing.assert_allclose(first.actual, original[24:30], atol=1e-9)
    expected = scaler.inverse(pred[:1], ["temperature"])[0, :, 0]
    np.testing.assert_allclose(first.forecast, expected, atol=1e-9)

    unscaled = plot_panels(test, pred, y, 0, "temperature", 24, 3)
    assert unscaled[0].label == "temperature (model units)"
    np.testing.assert_allclose(unscaled[0].actual, y[0, :, 0])

    # the op draws it (a PNG) and its metrics are unchanged by the scaler's presence
    result = Evaluate(plot_windows=2).run(StepContext(), model, test, scaler.to_json())
    assert result["plot"].startswith(b"\x89PNG")
    assert isinstance(result["metrics"]["mse_original"], float)
    assert isinstance(test, pd.DataFrame)
