"""A small oil-temperature-like series and a workflow that trains, evaluates and registers a
forecaster on it, for the card, policy and card API tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from amml.engine.loading import run_workflow
from amml.store import Store

WORKFLOW = """\
name: card-test
params: {{lookback: 24, horizon: 6, csv: oil.csv}}
steps:
  raw:
    op: source.csv
    with: {{path: "${{params.csv}}", time: time}}
  splits:
    op: split
    inputs: {{table: raw}}
  model:
    op: train
    inputs: {{train: splits.train, val: splits.val}}
    with: {{model: {kind}, setting: S, target: OT, lookback: "${{params.lookback}}",
            horizon: "${{params.horizon}}", epochs: 2}}
  evaluation:
    op: evaluate
    inputs: {{model: model, table: splits.test}}
    with: {{target: OT}}
  registered:
    op: register
    inputs: {{model: model, metrics: evaluation.metrics, data: splits.test}}
    with: {{name: oil, aliases: [challenger]}}
"""


def oil_frame(days: int = 60, *, noisy_station: float = 0.0, shift: float = 0.0,
              seed: int = 0, period: float = 24.0, start: str = "2025-01-01"
              ) -> pd.DataFrame:
    """Hourly OT = a cycle of ``period`` hours + noise; two stations alternating every two
    days, the second with ``noisy_station`` more noise; ``shift`` added to every value."""
    n = 24 * days
    rng = np.random.default_rng(seed)
    station = np.where((np.arange(n) // 48) % 2 == 0, 1, 2)
    ot = 10 + shift + 3 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 0.2, n)
    ot = ot + np.where(station == 2, rng.normal(0, noisy_station, n) if noisy_station else 0,
                       0)
    return pd.DataFrame({"time": pd.date_range(start, periods=n, freq="h"), "OT": ot,
                         "station_id": station})


def register_version(store: Store, folder: Path, *, kind: str = "linear",
                     frame: pd.DataFrame | None = None, name: str = "oil.csv") -> int:
    """Run the workflow on ``frame`` (written to ``folder/name``); the new version number."""
    folder.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else oil_frame()).to_csv(folder / name, index=False)
    path = folder / "workflow.yaml"
    path.write_text(WORKFLOW.format(kind=kind))
    result = run_workflow(path, {"csv": str(folder / name)}, store=store)
    return int(result["registered"]["version"])
