"""The oil-temperature example: both forms give the same IR; it runs end to end on a small
generated stand-in for ETTh1 (same columns, hourly), registers the model, then runs again
fully cached (registering nothing new)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from amml import compile_workflow, run_workflow
from amml.registry import ModelRegistry
from amml.store import open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "oil_temperature"


def _ett_like(path: Path, rows: int = 14400 + 200) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    data = {"date": pd.date_range("2016-07-01", periods=rows, freq="h")}
    for i, name in enumerate(["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]):
        data[name] = 5 + np.sin(2 * np.pi * t / 24 + i) + 0.1 * rng.normal(size=rows)
    data["OT"] = 30 + 5 * np.sin(2 * np.pi * t / 24) + 3 * np.sin(2 * np.pi * t / 168) \
        + 0.3 * rng.normal(size=rows)
    pd.DataFrame(data).to_csv(path, index=False)


def test_python_and_yaml_forms_are_the_same_workflow() -> None:
    assert compile_workflow(EXAMPLE / "workflow.yaml").ir.canonical_json() == \
        compile_workflow(EXAMPLE / "workflow.py").ir.canonical_json()


def test_runs_end_to_end_then_fully_cached(tmp_path: Path) -> None:
    csv = tmp_path / "ETTh1.csv"
    _ett_like(csv)
    params = {"csv": str(csv), "db": f"sqlite:///{tmp_path / 'ett.db'}", "model": "nlinear",
              "horizon": 24, "lookback": 96, "epochs": 2}
    store = open_store(tmp_path / "store")
    first = run_workflow(compile_workflow(EXAMPLE / "workflow.yaml", params), store=store)
    metrics = first["evaluation"]
    assert metrics["windows"] == 2880 + 96 - 96 - 24 + 1
    assert 0 < metrics["mse"] < 0.5 and metrics["mse_original"] > 0
    assert first.output("evaluation", "plot").startswith(b"\x89PNG")
    registered = first["registered"]
    assert registered["ref"] == "oil-temperature@1"
    version = ModelRegistry(store).resolve("oil-temperature@challenger")
    assert version.version == 1 and version.run_id == first.run_id
    assert version.step_name == "registered"
    assert version.metrics["mse"] == metrics["mse"]
    signature = version.signature
    assert (signature["freq"], signature["lookback"], signature["horizon"]) == ("h", 96, 24)
    assert signature["outputs"] == ["OT"] and set(signature["scaler"]) == {"OT"}
    second = run_workflow(compile_workflow(EXAMPLE / "workflow.yaml", params), store=store)
    assert second.count("cached") == len(second.steps)
    assert [v.version for v in ModelRegistry(store).versions("oil-temperature")] == [1]
    store.close()
