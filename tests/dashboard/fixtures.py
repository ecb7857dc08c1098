"""A store filled by real AMML runs, for the dashboard's tests and demo: a forecasting
workflow (PyTorch training signed into the ledger, evaluation plot, registration) run twice
with different parameters (the second reuses cached steps), an anomaly workflow (detector,
alarms against labels, plot), a tracked run with a loss curve, an alias promotion and a
ledger rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FORECAST_YAML = """\
name: sensor-forecast
params: {periods: 400, lookback: 24, horizon: 6, epochs: 2}
steps:
  sensors:
    op: source.synthetic
    with: {periods: "${params.periods}", seed: 5, anomalies: 4}
  splits:
    op: split
    inputs: {table: sensors}
    with: {train: 0.6, val: 0.2, overlap: "${params.lookback}"}
  train_scaled:
    op: scale
    inputs: {table: splits.train}
    with: {method: zscore, exclude: [is_anomaly]}
  val_scaled:
    op: scale
    inputs: {table: splits.val, scaler: train_scaled.scaler}
  test_scaled:
    op: scale
    inputs: {table: splits.test, scaler: train_scaled.scaler}
  model:
    op: train
    inputs: {train: train_scaled, val: val_scaled}
    with: {model: dlinear, target: temperature, lookback: "${params.lookback}",
           horizon: "${params.horizon}", epochs: "${params.epochs}", batch_size: 64}
  evaluation:
    op: evaluate
    inputs: {model: model, table: test_scaled, scaler: train_scaled.scaler}
    with: {target: temperature}
  registered:
    op: register
    inputs: {model: model, metrics: evaluation.metrics, scaler: train_scaled.scaler,
             data: test_scaled}
    with: {name: sensor, aliases: [challenger], force: true}
"""

ANOMALY_YAML = """\
name: sensor-anomalies
params: {periods: 600}
steps:
  sensors:
    op: source.synthetic
    with: {periods: "${params.periods}", seed: 7, anomalies: 6}
  clean:
    op: preprocess
    inputs: {table: sensors}
    with: {fill: linear, scale: zscore, fit_fraction: 0.3, exclude: [is_anomaly]}
  anomalies:
    op: detect
    inputs: {table: clean}
    with:
      detector: rolling_mad
      label: is_anomaly
      threshold: {kind: quantile, quantile: 0.99, reference: 0.3, min_gap: 12}
  plot:
    op: report.anomalies
    inputs: {table: anomalies, report: anomalies.report}
    with: {label: is_anomaly}
"""


def fill_store(folder: Path) -> dict[str, Any]:
    """Write the workflows under ``folder``, run them into the default store (``AMML_HOME``)
    and return what the tests look for."""
    from amml import Client, run_workflow
    from amml.registry import ModelRegistry, promote
    from amml.store import open_store
    from amml.store.ledger import Ledger

    folder.mkdir(parents=True, exist_ok=True)
    forecast = folder / "forecast.yaml"
    forecast.write_text(FORECAST_YAML)
    anomaly = folder / "anomaly.yaml"
    anomaly.write_text(ANOMALY_YAML)
    first = run_workflow(str(forecast))
    second = run_workflow(str(forecast), {"epochs": 3})  # data steps cached, training re-runs
    detection = run_workflow(str(anomaly))
    with Client() as client, client.start_run("tracked-experiment",
                                              params={"lr": 0.01, "layers": 2}) as run:
        run.log_batch([("loss", 1.0 / (step + 1), step) for step in range(40)])
        run.log_metric("accuracy", 0.93, step=39)
        tracked = run.id
    with open_store() as store:
        registry = ModelRegistry(store)
        registry.set_alias("sensor", "challenger", 1, actor="fixture", reason="compare")
        promote(registry, "sensor", actor="fixture", reason="first champion")
        registry.set_alias("sensor", "challenger", 2, actor="fixture", reason="newest")
        ledgers = Ledger.names(store)
        chain = Ledger(store, ledgers[0])
        chain.rollback(seq=1, reason="fixture: back to epoch 1")
    return {"runs": [first.run_id, second.run_id, detection.run_id, tracked],
            "forecast_runs": [first.run_id, second.run_id], "detection_run": detection.run_id,
            "tracked_run": tracked, "model": "sensor", "ledger": ledgers[0],
            "ledgers": ledgers}
