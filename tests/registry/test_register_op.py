"""The ``register`` op inside workflows: versions, lineage, signature, aliases, caching."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from amml import Workflow, compile_workflow, ops, run_workflow
from amml._exceptions import OpError, WorkflowValidationError
from amml.ops import REGISTRY, Op, StepContext, register
from amml.ops.models.forecaster import Forecaster
from amml.ops.models.register import Register, infer_frequency, model_signature
from amml.registry import ModelRegistry
from amml.store import Store

FLOW = """\
name: registered-forecast
params: {seed: 0, model: naive, epochs: 1, aliases: [challenger]}
steps:
  raw: {op: source.synthetic, with: {periods: 600, seed: "${params.seed}"}}
  splits: {op: split, inputs: {table: raw}}
  train_scaled: {op: scale, inputs: {table: splits.train}, with: {exclude: [is_anomaly]}}
  test_scaled: {op: scale, inputs: {table: splits.test, scaler: train_scaled.scaler}}
  model:
    op: train
    inputs: {train: train_scaled}
    with: {model: "${params.model}", target: temperature, setting: MS,
           features: [temperature, vibration], lookback: 48, horizon: 12,
           epochs: "${params.epochs}", batch_size: 64, device: cpu}
  evaluation:
    op: evaluate
    inputs: {model: model, table: test_scaled, scaler: train_scaled.scaler}
  registered:
    op: register
    inputs: {model: model, metrics: evaluation.metrics, scaler: train_scaled.scaler,
             data: test_scaled}
    with: {name: sensors, aliases: "${params.aliases}", description: hourly sensors}
"""


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    return path


def _run(flow: Path, store: Store, **params):
    return run_workflow(compile_workflow(flow, params), store=store)


def test_register_step_records_version_lineage_signature_and_aliases(flow: Path,
                                                                       store: Store) -> None:
    result = _run(flow, store)
    out = result["registered"]
    assert (out["name"], out["version"], out["ref"]) == ("sensors", 1, "sensors@1")
    registry = ModelRegistry(store)
    version = registry.resolve("sensors@challenger")
    assert version.version == 1
    # by digest: the very artifact the train step stored, no second copy
    assert version.artifact_digest == result.steps["model"].outputs["model"].digest
    assert (version.run_id, version.step_name) == (result.run_id, "registered")
    assert version.description == "hourly sensors"
    evaluation = result["evaluation"]
    assert version.metrics["mse"] == evaluation["mse"]
    assert version.metrics["mse_original"] == evaluation["mse_original"]
    assert "outputs" not in version.metrics  # text and lists belong to the signature
    signature = version.signature
    assert signature == out["signature"]
    assert (signature["freq"], signature["lookback"], signature["horizon"]) == ("h", 48, 12)
    assert signature["columns"] == ["temperature", "vibration"]
    assert signature["outputs"] == ["temperature"]
    assert signature["model_kind"] == "naive"
    assert set(signature["scaler"]) == {"temperature", "vibration"}
    assert signature["scaler"]["temperature"]["kind"] == "zscore"
    assert out["inputs"]["model"] == version.artifact_digest
    event = registry.alias_history("sensors", "challenger")[0]
    assert event["reason"] == f"registered by {result.run_id}/registered"
    assert registry.load(version).horizon == 12


def test_a_cached_rerun_registers_nothing_and_new_data_registers_version_2(
        flow: Path, store: Store) -> None:
    registry = ModelRegistry(store)
    _run(flow, store)
    again = _run(flow, store)
    assert again.steps["registered"].status == "cached"
    assert again["registered"]["version"] == 1
    assert [v.version for v in registry.versions("sensors")] == [1]

    newer = _run(flow, store, seed=7)
    assert newer.steps["registered"].status == "ran"
    assert newer["registered"]["version"] == 2
    assert [v.version for v in registry.versions("sensors")] == [1, 2]
    assert registry.alias_version("sensors", "challenger") == 2
    assert registry.get("sensors", 2).run_id == newer.run_id
    moves = registry.alias_history("sensors", "challenger")
    assert [(e["from_version"], e["to_version"]) for e in moves] == [(None, 1), (1, 2)]


def test_a_deep_model_registers_with_its_signature(flow: Path, store: Store) -> None:
    result = _run(flow, store, model="nlinear", epochs=1, aliases=[])
    version = ModelRegistry(store).resolve("sensors")
    assert version.signature["model_kind"] == "nlinear"
    assert version.signature["columns"] == ["temperature", "vibration"]
    assert version.aliases == [] and result["registered"]["aliases"] == []


def test_python_form_is_the_same_workflow(flow: Path) -> None:
    with Workflow("registered-forecast", params={"seed": 0, "model": "naive", "epochs": 1,
                                                 "aliases": ["challenger"]}) as wf:
        p = wf.params
        raw = ops.source.synthetic(periods=600, seed=p.seed)
        splits = ops.split(raw)
        train_scaled = ops.scale(splits["train"], exclude=["is_anomaly"])
        test_scaled = ops.scale(splits["test"], scaler=train_scaled["scaler"])
        model = ops.train(train_scaled, model=p.model, target="temperature", setting="MS",
                          features=["temperature", "vibration"], lookback=48, horizon=12,
                          epochs=p.epochs, batch_size=64, device="cpu")
        evaluation = ops.evaluate(model, test_scaled, train_scaled["scaler"])
        registered = ops.register(model, evaluation["metrics"], train_scaled["scaler"],
                                  test_scaled, name="sensors", aliases=p.aliases,
                                  description="hourly sensors")
    assert registered.ref() == "registered"
    assert registered.node.location[0] == __file__  # errors point at the caller's line
    assert compile_workflow(wf).ir.canonical_json() == compile_workflow(flow).ir.canonical_json()


def test_register_is_still_the_op_decorator() -> None:
    @register
    class Twice(Op):
        name = "test_registry.twice"
        outputs = {"out": "json"}

        def run(self, ctx: StepContext) -> dict:
            return {"n": 2}

    try:
        assert REGISTRY.get("test_registry.twice") is Twice
    finally:
        REGISTRY.unregister("test_registry.twice")


def test_without_a_registry_the_op_fails_clearly() -> None:
    with pytest.raises(OpError, match="register needs the model registry"):
        Register(name="sensors").run(StepContext(), model=Forecaster("naive", 24, 6))
    with pytest.raises(OpError, match="register needs the model registry"):
        ops.register(Forecaster("naive", 24, 6), name="sensors")


def test_invalid_names_and_aliases_are_refused_before_running(tmp_path: Path,
                                                              store: Store) -> None:
    for bad in ("{name: 'has space'}", "{name: ok, aliases: ['1st']}"):
        path = tmp_path / "bad.yaml"
        path.write_text(FLOW.replace(
            'with: {name: sensors, aliases: "${params.aliases}", description: hourly sensors}',
            f"with: {bad}"))
        with pytest.raises(WorkflowValidationError):
            compile_workflow(path)
    assert ModelRegistry(store).names() == []


def test_signature_and_frequency_helpers() -> None:
    model = Forecaster("naive", 24, 6)
    assert model_signature(model, freq="15min")["freq"] == "15min"
    assert model_signature(model)["freq"] is None
    column = pd.DataFrame({"time": pd.date_range("2024", periods=4, freq="D"), "x": range(4)})
    assert infer_frequency(column) == "D"
    irregular = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01 00:21",
                                  "2024-01-01 00:30"])
    assert infer_frequency(pd.DataFrame({"x": range(4)}, index=irregular)) == "10min"
    scaler = {"a": {"kind": "zscore", "offset": 0.0, "scale": 1.0},
              "b": {"kind": "zscore", "offset": 1.0, "scale": 2.0}}
    assert model_signature(model, scaler=scaler)["scaler"] == scaler  # no columns: all kept


def test_register_refuses_to_move_a_served_alias_to_another_signature(tmp_path: Path,
                                                                      store: Store) -> None:
    """Issue 19: an alias a server follows must not jump to a model of another horizon or
    other columns unless forced; the try-out alias 'challenger' moves freely."""
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.replace("lookback: 48, horizon: 12", 'lookback: 48, horizon: '
                                 '"${params.horizon}"').replace(
        "params: {seed: 0,", "params: {horizon: 12, force: false, seed: 0,").replace(
        "description: hourly sensors}", 'description: hourly sensors, force: "${params.force}"}'))
    _run(path, store, aliases=["champion", "challenger"])
    with pytest.raises(Exception, match=r"horizon: 12 → 24"):
        _run(path, store, horizon=24, aliases=["champion"])
    registry = ModelRegistry(store)
    assert registry.resolve("sensors@champion").signature["horizon"] == 12
    _run(path, store, horizon=24, aliases=["challenger"])  # the try-out slot: no check
    assert registry.resolve("sensors@challenger").signature["horizon"] == 24
    _run(path, store, horizon=24, seed=1, aliases=["champion"], force=True)
    assert registry.resolve("sensors@champion").signature["horizon"] == 24
