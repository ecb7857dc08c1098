"""``amml.load_model`` gives a model that forecasts in original units exactly as the server
answers, applying the signature's scaler and inverting it (one shared code path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from amml.ops.base import StepContext
from amml.ops.models.register import model_signature
from amml.ops.models.train import Train
from amml.ops.sources.synthetic import make_sensor_frame
from amml.ops.transforms.scaling import Scaler
from amml.registry import LoadedModel, ModelRegistry, RegistryError, load_model
from amml.serve import ServeConfig
from amml.serve.app import create_app
from amml.store import Store
from tests.serve.conftest import wait_until

COLUMNS = ["temperature", "vibration", "load"]


def _register(store: Store) -> pd.DataFrame:
    """'sensors': a linear MS model trained on z-scored data, its scaler in the signature;
    returns the raw (original units) frame."""
    raw = make_sensor_frame(periods=600, seed=3)[COLUMNS]
    scaler = Scaler.fit(raw, "zscore")
    scaled = scaler.transform(raw)
    model = Train(model="linear", setting="MS", target="temperature", lookback=24,
                  horizon=6).run(StepContext(), scaled.iloc[:450], scaled.iloc[400:])
    signature = model_signature(model, scaler=scaler.to_json(), data=raw, freq="h")
    ModelRegistry(store).register("sensors", model, signature=signature)
    return raw


def test_load_model_forecasts_in_original_units_as_the_server_does(store: Store,
                                                                    tmp_path: Path) -> None:
    raw = _register(store)
    window = raw.iloc[-24:]
    loaded = load_model("sensors", store=store)
    assert isinstance(loaded, LoadedModel) and loaded.horizon == 6  # the model's attributes
    forecast = loaded.forecast(raw)  # the last lookback rows of a longer frame
    assert list(forecast.columns) == ["temperature"] and len(forecast) == 6
    assert forecast.index[0] == window.index[-1] + pd.Timedelta(hours=1)

    config = ServeConfig(models=["sensors"], home=str(tmp_path / ".amml"), auth=False,
                         poll_interval=0.05, log_requests=False)
    with TestClient(create_app(config)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        body = {"columns": COLUMNS, "window": window.to_numpy().tolist()}
        answer = client.post("/v1/models/sensors/forecast", json=body)
    assert answer.status_code == 200, answer.text
    served = np.array(answer.json()["forecast"]["temperature"])
    np.testing.assert_allclose(forecast["temperature"].to_numpy(), served, rtol=0, atol=1e-9)

    # the bare model works in scaled units: raw values into it give another (wrong) answer
    bare = loaded.model.predict_windows(window.to_numpy()[None])[0, :, 0]
    assert not np.allclose(bare, served, atol=1e-3)
    # arrays: one window, or a batch, in the model's column order
    np.testing.assert_allclose(loaded.forecast(window.to_numpy())[:, 0], served, atol=1e-9)
    assert loaded.forecast(np.stack([window.to_numpy()] * 2)).shape == (2, 6, 1)


def test_load_model_says_what_a_frame_lacks(store: Store) -> None:
    raw = _register(store)
    loaded = load_model("sensors", store=store)
    with pytest.raises(RegistryError, match=r"lacks \['load'\]"):
        loaded.forecast(raw.drop(columns="load"))
    with pytest.raises(RegistryError, match="needs the last 24 rows"):
        loaded.forecast(raw.iloc[:5])
