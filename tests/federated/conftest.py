"""A small federation on generated data: two stations, a workflow, a plan."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import IN_CI

WORKFLOW = """\
name: station
params: {path: alpha.csv}
steps:
  raw:
    op: source.csv
    with: {path: "${params.path}", time: time}
  clean:
    op: preprocess
    inputs: {table: raw}
    with: {fill: linear, scale: zscore, fit_fraction: 0.7}
  splits:
    op: split
    inputs: {table: clean}
    with: {train: 0.7, val: 0.1, overlap: 24}
"""

PLAN = """\
federated:
  name: toy
  model: {kind: nlinear, target: y, lookback: 24, horizon: 6, epochs: 1, batch_size: 32}
  rounds: ROUNDS
  min_clients: 1
  round_timeout: 600
  clients:
    - {name: alpha, params: {path: alpha.csv}}
    - {name: beta, params: {path: beta.csv}}
"""

CLIENTS = ("alpha", "beta")


def station_frame(seed: int, rows: int = 400) -> pd.DataFrame:
    """An hourly series with a daily cycle, a phase of its own, noise and a gap."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    y = 10 + 5 * np.sin(t * 2 * np.pi / 24 + seed) + rng.normal(0, 0.5, rows)
    y[100:104] = np.nan  # a real-looking gap the preprocess fills
    return pd.DataFrame({"time": pd.date_range("2026-01-01", periods=rows, freq="h"), "y": y})


def write_federation(folder: Path, rounds: int = 3) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(CLIENTS):
        station_frame(seed).to_csv(folder / f"{name}.csv", index=False)
    (folder / "workflow.yaml").write_text(WORKFLOW)
    plan = folder / "workflow.federated.yaml"
    plan.write_text(PLAN.replace("ROUNDS", str(rounds)))
    return folder / "workflow.yaml", plan


def require_flower() -> None:
    """Flower's binaries beside this Python: skip without them, fail under CI=true."""
    missing = [name for name in ("flower-superlink", "flower-supernode", "flwr")
               if not (Path(sys.executable).parent / name).exists()
               and shutil.which(name) is None]
    if missing:
        problem = f"Flower binaries missing: {', '.join(missing)} (pip install 'amml[federated]')"
        if IN_CI:
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(problem)
