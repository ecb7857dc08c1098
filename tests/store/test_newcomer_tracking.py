"""Issue 19 (a newcomer's first hour), tracking: what ``amml show``, ``Client`` and
``amml lineage`` report, against SQLite and the real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from amml import Client, compile_workflow, run_workflow
from amml.cli.main import app
from amml.lang import load_yaml_text
from amml.store import Store
from tests.helpers import SMALL_YAML


def _cli(store: Store, monkeypatch: pytest.MonkeyPatch, *args: str):
    """The command line on the same store (AMML_HOME is the test's; PostgreSQL by URL)."""
    if not store.metadata.url.startswith("sqlite"):
        monkeypatch.setenv("AMML_STORE_URL", store.metadata.url)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_last_metric_value_is_the_highest_step_then_the_latest_time(
        any_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(store=any_store)
    with client.start_run("readme") as run:  # the README's snippet, word for word
        run.log_metric("loss", 0.3, step=1)  # queued: committed after the batch below
        run.log_batch([("loss", 0.2, 2), ("loss", 0.1, 3)])
        # one step logged twice: the later timestamp wins, whatever the commit order
        run.log_batch([("acc", 0.9, 5)], timestamp=2000.0)
        run.log_batch([("acc", 0.7, 5)], timestamp=1000.0)
    summary = {m["key"]: (m["value"], m["points"]) for m in client.run(run.id)["metrics"]}
    assert summary == {"loss": (0.1, 3), "acc": (0.9, 2)}
    assert [p["value"] for p in client.metrics(run.id, "loss")] == [0.3, 0.2, 0.1]
    shown = json.loads(_cli(any_store, monkeypatch, "show", run.id, "--json").stdout)
    assert {m["key"]: m["value"] for m in shown["metrics"]} == {"loss": 0.1, "acc": 0.9}
    human = _cli(any_store, monkeypatch, "show", run.id).output
    assert "0.1 " in human and "0.3" not in human


def test_cached_steps_show_the_metrics_of_the_run_that_produced_them(
        any_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # the PostgreSQL store lives for the whole session: a size no other test uses, so the
    # first run here really runs (and is not itself served from another test's cache)
    periods = 1000 + uuid.uuid4().int % 5000
    workflow = compile_workflow(load_yaml_text(SMALL_YAML), {"periods": periods})
    first = run_workflow(workflow, store=any_store)
    assert {s.status for s in first.steps.values()} == {"ran"}
    second = run_workflow(workflow, store=any_store)
    assert {s.status for s in second.steps.values()} == {"cached"}
    client = Client(store=any_store)
    produced = client.run(first.run_id)["metrics"]
    reused = client.run(second.run_id)["metrics"]
    assert produced and all("cached_from" not in m for m in produced)
    assert reused == [{**m, "cached_from": first.run_id} for m in produced]
    mse = client.metrics(first.run_id, "mse")
    assert mse and client.metrics(second.run_id, "mse") == [
        {**p, "cached_from": first.run_id} for p in mse]
    assert client.metrics(second.run_id, step="score") == [
        {**p, "cached_from": first.run_id} for p in client.metrics(first.run_id, step="score")]
    # a partly cached run: its own steps' metrics, and the reused ones marked as such
    third = run_workflow(workflow, store=any_store, rerun=["score"])
    by_step = {(m["step_name"], m["key"]): m.get("cached_from")
               for m in client.run(third.run_id)["metrics"]}
    assert by_step[("score", "mse")] is None
    assert by_step[("alarms", "alarms")] == first.run_id
    shown = json.loads(_cli(any_store, monkeypatch, "show", second.run_id, "--json").stdout)
    assert {m["key"] for m in shown["metrics"]} >= {"mse", "alarms"}
    human = _cli(any_store, monkeypatch, "show", second.run_id).output
    assert "mse" in human and first.run_id[:8] in human


ROUND_TRIP = """\
name: round-trip
params: {{csv: x.csv}}
steps:
  csv:
    op: source.csv
    with: {{path: "${{params.csv}}", time: date}}
  load:
    op: sink.sql
    inputs: {{data: csv}}
    with: {{url: "sqlite:///{db}", table: readings}}
  extracted:
    op: source.sql
    inputs: {{wait_for: load}}
    with: {{url: "sqlite:///{db}", table: readings, time: date}}
  clean:
    op: preprocess
    inputs: {{table: extracted}}
    with: {{scale: zscore}}
"""


def test_lineage_used_by_lists_only_steps_bound_to_that_output(
        any_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a CSV loaded into SQL and read back: 'csv' and 'extracted' write the same table, so a
    # digest alone cannot tell them apart (the oil-temperature example's shape)
    times = pd.date_range("2024-01-01", periods=200, freq="h")
    csv = tmp_path / "readings.csv"
    pd.DataFrame({"date": times.strftime("%Y-%m-%d %H:%M:%S"),
                  "OT": np.round(np.cos(np.arange(200)), 3)}).to_csv(csv, index=False)
    text = ROUND_TRIP.format(db=tmp_path / "readings.db")
    workflow = compile_workflow(load_yaml_text(text), {"csv": str(csv)})
    first = run_workflow(workflow, store=any_store)
    assert first.steps["csv"].outputs["out"] == first.steps["extracted"].outputs["out"]
    client = Client(store=any_store)

    def used_by(target: str) -> set[tuple[str, str]]:
        graph = client.lineage(target)
        out = next(o for o in graph["outputs"] if o["port"] == "out")
        return {(c["run_id"], c["step"]) for c in out["consumed_by"]}

    assert used_by(f"{first.run_id}:extracted") == {(first.run_id, "clean")}
    assert used_by(f"{first.run_id}:csv") == {(first.run_id, "load")}
    clean = client.lineage(f"{first.run_id}:clean")
    assert clean["inputs"][0]["produced_by"]["step"] == "extracted"
    # a later run reuses the outputs through the cache: its readers count, in their run
    # (the file source: its cache does not hang on the SQL table's state)
    second = run_workflow(workflow, store=any_store)
    assert second.steps["csv"].status == "cached"
    assert used_by(f"{first.run_id}:csv") == {(first.run_id, "load"), (second.run_id, "load")}
    assert used_by(f"{second.run_id}:extracted") == {(second.run_id, "clean")}
    assert (first.run_id, "load") not in used_by(f"{first.run_id}:extracted")
    tree = _cli(any_store, monkeypatch, "lineage", f"{first.run_id}:extracted").output
    assert "→ clean" in tree and "→ load" not in tree
