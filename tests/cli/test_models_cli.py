"""``amml models``: list, show, alias, promote, delete, history; JSON outputs, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amml.cli.main import app
from amml.ops.models.forecaster import Forecaster
from amml.registry import ModelRegistry
from amml.store import open_store

FLOW = """\
name: registered
steps:
  raw: {op: source.synthetic, with: {periods: 500}}
  splits: {op: split, inputs: {table: raw}}
  model:
    op: train
    inputs: {train: splits.train}
    with: {model: seasonal_naive, target: temperature, lookback: 48, horizon: 12}
  evaluation: {op: evaluate, inputs: {model: model, table: splits.test}}
  registered:
    op: register
    inputs: {model: model, metrics: evaluation.metrics, data: splits.test}
    with: {name: sensors, aliases: [challenger]}
"""


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _json(*args: str):
    result = _invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def oil() -> None:
    """Model 'oil': versions 1-3 (mse 0.054, 0.051, 0.06), challenger → 1."""
    with open_store(os.environ["AMML_HOME"]) as store:
        registry = ModelRegistry(store)
        for mse in (0.054, 0.051, 0.06):
            registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": mse},
                              signature={"freq": "h", "lookback": 24, "horizon": 6,
                                         "model_kind": "naive"}, actor="ana")
        registry.set_alias("oil", "challenger", 1, actor="ana", reason="first")


def test_list_models_and_versions(oil: None) -> None:
    assert _json("models", "list") == [{"name": "oil", "versions": 3, "latest": 3,
                                        "aliases": {"challenger": 1},
                                        "updated_at": _json("models", "list")[0]["updated_at"]}]
    versions = _json("models", "list", "oil")
    assert [(v["version"], v["aliases"], v["metrics"]["mse"]) for v in versions] == [
        (1, ["challenger"], 0.054), (2, [], 0.051), (3, [], 0.06)]
    table = _invoke("models", "list")
    assert table.exit_code == 0 and "oil" in table.output and "challenger→1" in table.output
    detail = _invoke("models", "list", "oil")
    assert detail.exit_code == 0 and "mse=0.051" in detail.output
    missing = _invoke("models", "list", "gas")
    assert missing.exit_code == 1 and "no model named 'gas' (models: oil)" in missing.output


def test_list_is_empty_before_anything_is_registered() -> None:
    assert _json("models", "list") == []
    assert "no models registered yet" in _invoke("models", "list").output


def test_show_a_version_by_number_alias_or_newest(oil: None) -> None:
    shown = _json("models", "show", "oil@challenger")
    assert (shown["ref"], shown["version"], shown["metrics"]) == ("oil@1", 1, {"mse": 0.054})
    assert shown["signature"]["freq"] == "h" and shown["aliases"] == ["challenger"]
    assert [(e["alias"], e["to_version"], e["actor"]) for e in shown["history"]] == [
        ("challenger", 1, "ana")]
    assert _json("models", "show", "oil")["version"] == 3
    assert _json("models", "show", "oil@2")["metrics"] == {"mse": 0.051}
    text = _invoke("models", "show", "oil@1")
    assert text.exit_code == 0 and "oil@1" in text.output and "model_kind" in text.output
    for reference, message in (("oil@9", "no version 9 (versions: 1-3)"),
                               ("oil@staging", "no alias 'staging' (aliases: challenger)"),
                               ("gas", "no model named 'gas'")):
        result = _invoke("models", "show", reference)
        assert result.exit_code == 1 and message in result.output, result.output


def test_alias_set_move_and_remove(oil: None) -> None:
    moved = _json("models", "alias", "oil", "challenger", "2", "--reason", "retrained")
    assert moved == {"name": "oil", "alias": "challenger", "from_version": 1, "to_version": 2}
    copied = _json("models", "alias", "oil", "backup", "challenger")  # another alias works
    assert copied["to_version"] == 2 and copied["from_version"] is None
    text = _invoke("models", "alias", "oil", "champion", "3")
    assert text.exit_code == 0 and "version 3 (new)" in text.output
    removed = _json("models", "alias", "oil", "backup", "--remove")
    assert removed == {"name": "oil", "alias": "backup", "from_version": 2, "to_version": None}
    assert _json("models", "list")[0]["aliases"] == {"challenger": 2, "champion": 3}
    history = _json("models", "history", "oil", "challenger")
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in history] == [
        (None, 1, "first"), (1, 2, "retrained")]


def test_alias_errors(oil: None) -> None:
    assert _invoke("models", "alias", "oil", "champion", "9").exit_code == 1
    assert _invoke("models", "alias", "oil", "nope", "--remove").exit_code == 1
    assert _invoke("models", "alias", "gas", "champion", "1").exit_code == 1
    bad = _invoke("models", "alias", "oil", "1st", "1")
    assert bad.exit_code == 1 and "invalid alias" in bad.output
    both = _invoke("models", "alias", "oil", "champion", "1", "--remove")
    assert both.exit_code == 2 and "either VERSION or --remove" in both.output
    assert _invoke("models", "alias", "oil", "champion").exit_code == 2


def test_promote_follows_the_rule(oil: None) -> None:
    first = _json("models", "promote", "oil")
    assert first["promoted"] and first["to_version"] == 1 and first["from_version"] is None
    _invoke("models", "alias", "oil", "challenger", "2")
    better = _invoke("models", "promote", "oil", "--reason", "weekly")
    assert better.exit_code == 0, better.output
    assert "mse 0.051 < 0.054" in better.output
    _invoke("models", "alias", "oil", "challenger", "3")
    worse = _invoke("models", "promote", "oil")
    assert worse.exit_code == 1
    assert "not promoted" in worse.output and "mse 0.06 >= 0.051" in worse.output
    refused = _invoke("models", "promote", "oil", "--json")
    assert refused.exit_code == 1 and json.loads(refused.stdout)["promoted"] is False
    assert _json("models", "show", "oil@champion")["version"] == 2
    forced = _json("models", "promote", "oil", "--force", "--reason", "drill")
    assert forced["promoted"] and forced["forced"] and forced["to_version"] == 3
    events = _json("models", "history", "oil", "champion")
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 2), (2, 3)]
    assert events[1]["reason"] == "challenger oil@2 beats champion oil@1: mse 0.051 < 0.054; " \
                                  "weekly"
    assert events[2]["reason"].startswith("forced:") and events[2]["reason"].endswith("drill")


def test_promote_options_and_errors(oil: None) -> None:
    staged = _json("models", "promote", "oil", "--from", "2", "--to", "staging")
    assert staged["target"] == "staging" and staged["to_version"] == 2
    higher = _invoke("models", "promote", "oil", "--from", "3", "--to", "staging",
                     "--mode", "max")
    assert higher.exit_code == 0 and "mse 0.06 > 0.051" in higher.output
    missing = _invoke("models", "promote", "oil", "--from", "1", "--to", "staging",
                      "--metric", "r2")
    assert missing.exit_code == 1 and "no metric 'r2' (recorded: mse)" in missing.output
    assert _invoke("models", "promote", "oil", "--mode", "median").exit_code == 2
    assert _invoke("models", "promote", "gas").exit_code == 1
    no_candidate = _invoke("models", "promote", "oil", "--from", "canary")
    assert no_candidate.exit_code == 1 and "no alias 'canary'" in no_candidate.output


def test_delete_and_history(oil: None) -> None:
    _invoke("models", "alias", "oil", "champion", "2")
    refused = _invoke("models", "delete", "oil", "2")
    assert refused.exit_code == 1 and "still aliased as champion" in refused.output
    assert _invoke("models", "delete", "oil", "3").exit_code == 0
    forced = _invoke("models", "delete", "oil", "2", "--force", "--reason", "leak")
    assert forced.exit_code == 0 and "removed aliases: champion" in forced.output
    assert [v["version"] for v in _json("models", "list", "oil")] == [1]
    assert _invoke("models", "delete", "oil", "2").exit_code == 1
    assert _invoke("models", "delete", "oil", "x").exit_code == 2
    events = _json("models", "history", "oil")
    assert [(e["alias"], e["to_version"]) for e in events] == [
        ("challenger", 1), ("champion", 2), ("champion", None)]
    assert events[-1]["reason"] == "deleting version 2: leak"
    table = _invoke("models", "history", "oil")
    assert table.exit_code == 0 and "2 → removed" in table.output
    assert _invoke("models", "history", "gas").exit_code == 1
    assert _invoke("models", "history", "oil", "nope").exit_code == 1


def test_a_workflow_registers_and_the_cli_shows_its_lineage(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    run = _invoke("run", str(tmp_path / "flow.yaml"), "--json")
    assert run.exit_code == 0, run.output
    run_id = json.loads(run.stdout)["run_id"]
    shown = _json("models", "show", "sensors@challenger")
    assert shown["lineage"]["run_id"] == run_id and shown["lineage"]["step"] == "registered"
    assert set(shown["lineage"]["inputs"]) == {"model", "metrics", "data"}
    assert shown["lineage"]["inputs"]["model"] == shown["artifact"]
    assert shown["signature"]["freq"] == "h" and shown["signature"]["horizon"] == 12
    assert shown["signature"]["model_kind"] == "seasonal_naive"
    text = _invoke("models", "show", "sensors")
    assert text.exit_code == 0 and f"amml lineage {run_id}:registered" in text.output
    again = _invoke("run", str(tmp_path / "flow.yaml"), "--json")
    assert again.exit_code == 0
    assert [v["version"] for v in _json("models", "list", "sensors")] == [1]
