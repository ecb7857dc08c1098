"""Promotion and alias moves refuse a version that answers another question (another
signature) unless forced, and name the fields that differ; ``keys create`` refuses unknown
models."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from amml.cli.main import app
from amml.ops.models.forecaster import Forecaster
from amml.registry import ModelRegistry, SignatureMismatch, promote, signature_differences
from amml.store import Store, open_store

COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
#: the issue's case: champion H=336 in setting M, challenger H=96 in setting S
M336 = {"lookback": 336, "horizon": 336, "columns": COLUMNS, "outputs": COLUMNS, "freq": "h"}
S96 = {"lookback": 336, "horizon": 96, "columns": ["OT"], "outputs": ["OT"], "freq": "h"}


def _oil(registry: ModelRegistry) -> None:
    """oil@1: M, H=336, mse 0.432 (champion); oil@2: S, H=96, mse 0.054 (challenger);
    oil@3: like oil@1, mse 0.4."""
    registry.register("oil", Forecaster("naive", 336, 336, columns=COLUMNS, outputs=COLUMNS),
                      metrics={"mse": 0.432}, signature=M336)
    registry.register("oil", Forecaster("naive", 336, 96, columns=["OT"], outputs=["OT"]),
                      metrics={"mse": 0.054}, signature=S96)
    registry.register("oil", Forecaster("naive", 336, 336, columns=COLUMNS, outputs=COLUMNS),
                      metrics={"mse": 0.4}, signature={**M336, "freq": "1h"})
    registry.set_alias("oil", "champion", 1, actor="t")
    registry.set_alias("oil", "challenger", 2, actor="t")


def test_promotion_refuses_a_candidate_with_another_signature(store: Store) -> None:
    registry = ModelRegistry(store)
    _oil(registry)
    with pytest.raises(SignatureMismatch) as caught:
        promote(registry, "oil", actor="t")
    message = str(caught.value)
    assert "columns: [HUFL, HULL, MUFL, MULL, LUFL, LULL, OT] → [OT]" in message
    assert "outputs:" in message and "horizon: 336 → 96" in message
    assert "lookback" not in message and "freq" not in message  # equal fields are not named
    assert caught.value.differences[-1] == "horizon: 336 → 96"
    assert registry.alias_version("oil", "champion") == 1  # nothing moved


def test_promotion_with_the_same_signature_compares_metrics(store: Store) -> None:
    registry = ModelRegistry(store)
    _oil(registry)  # oil@3 differs only in how its frequency is spelled ("1h" and "h")
    result = promote(registry, "oil", candidate="3", actor="t")
    assert result.promoted and not result.forced, result.reason
    assert registry.alias_version("oil", "champion") == 3


def test_forced_promotion_over_a_signature_change_says_so(store: Store) -> None:
    registry = ModelRegistry(store)
    _oil(registry)
    result = promote(registry, "oil", actor="t", force=True)
    assert result.promoted and result.forced
    assert result.reason.startswith("forced over a signature change (columns: ")
    assert registry.alias_version("oil", "champion") == 2
    assert "horizon: 336 → 96" in registry.alias_history("oil", "champion")[-1]["reason"]


def test_setting_an_alias_with_same_signature_refuses_another_signature(store: Store) -> None:
    registry = ModelRegistry(store)
    _oil(registry)
    with pytest.raises(SignatureMismatch, match=r"horizon: 336 → 96.*--force"):
        registry.set_alias("oil", "champion", 2, actor="t", same_signature=True)
    assert registry.alias_version("oil", "champion") == 1
    # asked without the check (the register op moving its challenger), it moves
    assert registry.set_alias("oil", "champion", 2, actor="t") == 1
    # a new alias has no holder to differ from; an unsigned version cannot be compared
    registry.set_alias("oil", "staging", 2, actor="t", same_signature=True)
    registry.register("oil", Forecaster("naive", 24, 6))
    registry.set_alias("oil", "staging", 4, actor="t", same_signature=True)


def test_signature_differences_compare_only_the_recorded_question_fields() -> None:
    assert signature_differences(M336, {**M336, "scaler": {"OT": {}}, "model_kind": "x"}) == []
    assert signature_differences(M336, {"horizon": 96}) == ["horizon: 336 → 96"]
    assert signature_differences({**S96, "freq": "h"}, {**S96, "freq": "15min"}) == [
        "freq: h → 15min"]
    assert signature_differences({}, S96) == []


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_models_cli_promote_and_alias_refuse_another_signature_without_force() -> None:
    with open_store(os.environ["AMML_HOME"]) as store:
        _oil(ModelRegistry(store))
    refused = _invoke("models", "promote", "oil")
    assert refused.exit_code == 1
    assert "horizon: 336 → 96" in refused.output and "--force" in refused.output
    alias = _invoke("models", "alias", "oil", "champion", "2")
    assert alias.exit_code == 1 and "horizon: 336 → 96" in alias.output
    forced = _invoke("models", "alias", "oil", "champion", "2", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["to_version"] == 2
    back = _invoke("models", "promote", "oil", "--from", "1", "--force", "--json")
    assert back.exit_code == 0 and json.loads(back.stdout)["forced"] is True


def test_keys_create_refuses_a_model_that_does_not_exist() -> None:
    with open_store(os.environ["AMML_HOME"]) as store:
        _oil(ModelRegistry(store))
    refused = _invoke("keys", "create", "--model", "oli")
    assert refused.exit_code == 1
    assert "no model named 'oli'" in refused.output and "models: oil" in refused.output
    created = _invoke("keys", "create", "--model", "oil", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["models"] == ["oil"]
