"""``amml federated fleet``, ``status`` and the plan errors of ``up``/``run`` (no Flower
processes: the deployment tests run those)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from amml.cli.main import app
from amml.federated.client import new_model
from amml.federated.fleet import FleetRecorder
from amml.federated.lifecycle import ClientUpdate, RoundLifecycle
from amml.federated.spec import load_plan
from amml.store import open_store
from tests.federated.conftest import write_federation


def _store_with_a_round(home: Path, folder: Path) -> None:
    workflow, plan_file = write_federation(folder)
    plan = load_plan(plan_file, workflow)
    with open_store(home) as store:
        FleetRecorder(store, "toy", "7").record(1, [
            {"client": "alpha", "node_id": 1, "status": "ok",
             "metrics": {"health.rows": 400.0, "health.cpu_percent": 12.0,
                         "health.memory_mb": 250.0, "health.local_loss": 0.25,
                         "health.model_version": 0.0}},
            {"client": "beta", "node_id": 2, "status": "missing", "error": "no reply"}])
        RoundLifecycle(store, plan, "7").record(
            1, new_model(plan), [ClientUpdate("alpha", "1", "c" * 64, 280)], {"mse": 0.4},
            ["beta"])


def test_fleet_shows_each_client_and_exports_prometheus(tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _store_with_a_round(home, tmp_path / "fed")
    runner = CliRunner()
    shown = runner.invoke(app, ["federated", "fleet", "toy", "--home", str(home)],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "alpha" in shown.output and "missing" in shown.output and "initial" in shown.output
    rows = json.loads(runner.invoke(app, ["federated", "fleet", "--json", "--home",
                                          str(home)]).output)
    assert {(r["client"], r["status"]) for r in rows} == {("alpha", "ok"), ("beta", "missing")}
    metrics = runner.invoke(app, ["federated", "fleet", "toy", "--prometheus", "--home",
                                  str(home)]).output
    assert 'amml_fleet_up{federation="toy",client="beta"} 0' in metrics
    assert 'amml_fleet_memory_mb{federation="toy",client="alpha"} 250' in metrics


def test_status_lists_the_rounds_of_the_ledger(tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _store_with_a_round(home, tmp_path / "fed")
    result = CliRunner().invoke(app, ["federated", "status", "toy", "--json", "--home",
                                      str(home)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["processes"] == {}
    (entry,) = document["rounds"]
    assert entry["round"] == 1 and entry["model"] == "toy@1" and entry["missing"] == ["beta"]


def test_a_missing_plan_is_a_usage_error(tmp_path: Path) -> None:
    workflow, _ = write_federation(tmp_path / "fed")
    result = CliRunner().invoke(app, ["federated", "run", str(workflow), "--plan",
                                      str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "no federation plan" in result.output
