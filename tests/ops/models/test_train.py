"""Forecasting models on small generated data: shapes, seeded determinism, bit-exact
save/load, settings S / M / MS, and the literature's evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml import Workflow, compile_workflow, ops, run_workflow
from amml.ops.base import StepContext
from amml.ops.models.train import Evaluate, Train, make_windows
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import Store
from amml.store.artifacts.model import SafetensorsModel

MODELS = ["naive", "seasonal_naive", "linear", "dlinear", "nlinear", "rlinear", "patchtst",
          "lstm"]
FAST = {"epochs": 2, "batch_size": 64, "lookback": 48, "horizon": 12, "device": "cpu"}


def _table(periods: int = 700) -> pd.DataFrame:
    frame = make_sensor_frame(periods=periods, seed=2)[["temperature", "vibration", "load"]]
    return (frame - frame.mean()) / frame.std()


def _train(model: str, setting: str = "S", **extra):
    table = _table()
    config = {**FAST, "model": model, "setting": setting, "target": "temperature", **extra}
    return Train(**config).run(StepContext(), table.iloc[:500], table.iloc[452:600])


@pytest.mark.parametrize("model", MODELS)
def test_shapes_in_each_setting(model: str) -> None:
    table = _table()
    for setting, outputs in (("S", 1), ("M", 3), ("MS", 1)):
        trained = _train(model, setting)
        columns = trained.columns
        x, _ = make_windows(table, columns, trained.outputs, 48, 12)
        assert trained.predict_windows(x[:5]).shape == (5, 12, outputs)
        assert len(columns) == (1 if setting == "S" else 3)


@pytest.mark.parametrize("model", ["dlinear", "nlinear", "patchtst", "lstm"])
def test_training_is_deterministic_with_a_seed(model: str) -> None:
    first, second = _train(model, "M"), _train(model, "M")
    assert first.to_bytes() == second.to_bytes()
    assert _train(model, "M", seed=7).to_bytes() != first.to_bytes()


@pytest.mark.parametrize("model", MODELS)
def test_save_load_round_trip_is_bit_exact(model: str) -> None:
    trained = _train(model, "MS")
    data = trained.to_bytes()
    loaded = SafetensorsModel.from_bytes(data)
    assert loaded.to_bytes() == data
    x, _ = make_windows(_table(), trained.columns, trained.outputs, 48, 12)
    np.testing.assert_array_equal(loaded.predict_windows(x[:20]), trained.predict_windows(x[:20]))


def test_evaluation_scores_every_window_in_both_units() -> None:
    table = _table()
    trained = _train("nlinear", "S")
    scaler = {"temperature": {"kind": "zscore", "offset": 60.0, "scale": 8.0}}
    out = Evaluate().run(StepContext(), trained, table.iloc[500:], scaler)
    metrics = out["metrics"]
    assert metrics["windows"] == 200 - 48 - 12 + 1  # every stride-1 window, none dropped
    assert metrics["mse_original"] == pytest.approx(metrics["mse"] * 64)
    assert metrics["mae_original"] == pytest.approx(metrics["mae"] * 8)
    assert out["plot"].startswith(b"\x89PNG")


def test_a_trained_model_beats_the_naive_baseline() -> None:
    table = _table(1400)
    scores = {}
    for model in ("naive", "dlinear"):
        trained = Train(model=model, target="temperature", lookback=96, horizon=24, epochs=8,
                        device="cpu").run(StepContext(), table.iloc[:1000], table.iloc[904:1200])
        scores[model] = Evaluate().run(StepContext(), trained, table.iloc[1104:])["metrics"]["mse"]
    assert scores["dlinear"] < 0.8 * scores["naive"]


def test_early_stopping_and_the_ledger_in_a_workflow(store: Store) -> None:
    with Workflow("deep") as wf:
        raw = ops.source.synthetic(periods=900, seed=4)
        scaled = ops.scale(raw, exclude=["is_anomaly"])
        parts = ops.split(scaled, train=0.6, val=0.2, overlap=48)
        model = ops.train(parts["train"], parts["val"], model="dlinear", setting="MS",
                          target="temperature", features=["temperature", "load"],
                          lookback=48, horizon=12, epochs=30, patience=2, lr=0.05)
        ops.evaluate(model, parts["test"], scaled["scaler"], name="score")
    result = run_workflow(compile_workflow(wf), store=store)
    metrics = {m["key"]: m["value"]
               for m in store.metadata.metrics(result.run_id, step_name="model")}
    assert metrics["epochs_run"] < 30  # stopped early on the validation loss
    assert result["score"]["mse_original"] > 0
    from amml.store.ledger import Ledger

    assert Ledger(store, f"{result.run_id}/model").verify().ok
