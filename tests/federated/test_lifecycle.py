"""Rounds into the ledger and the registry; clients' health into the fleet table; a client's
local work (its workflow, training from the global weights, FedProx's pull)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amml.federated.client import (
    ClientIdentity,
    evaluate_locally,
    load_client_data,
    new_model,
    train_locally,
)
from amml.federated.fleet import FleetRecorder, prometheus_text
from amml.federated.lifecycle import ClientUpdate, RoundLifecycle, weights_digest
from amml.federated.spec import FederationSpec, load_plan
from amml.registry import ModelRegistry
from amml.store import open_store
from amml.store.fleet import FleetTable
from amml.store.ledger import Ledger
from tests.federated.conftest import write_federation


@pytest.fixture
def plan(tmp_path: Path) -> FederationSpec:
    workflow, plan_file = write_federation(tmp_path / "fed")
    return load_plan(plan_file, workflow)


def test_rounds_are_ledger_entries_and_versions_promoted_by_the_policy(
        tmp_path: Path, plan: FederationSpec) -> None:
    model = new_model(plan)
    updates = [ClientUpdate("alpha", "11", "a" * 64, 280, 0.4),
               ClientUpdate("beta", "12", "b" * 64, 270, 0.5)]
    with open_store(tmp_path / "store") as store:
        lifecycle = RoundLifecycle(store, plan, run_id="42")
        first = lifecycle.record(1, model, updates, {"mse": 0.5, "mae": 0.6}, [])
        model.set_weights([w + 0.1 for w in model.get_weights()])
        second = lifecycle.record(2, model, updates[:1], {"mse": 0.7, "mae": 0.7}, ["beta"])
        registry = ModelRegistry(store)
        entries = Ledger(store, "federated-toy").entries()
        assert Ledger(store, "federated-toy").verify().ok
        aliases = registry.aliases("toy")
        loaded = registry.load(registry.get("toy", 2))
    assert (first.version, first.promoted) == (1, True)
    assert (second.version, second.promoted) == (2, False)  # worse mse: champion stays
    assert "does not beat" in second.reason
    assert aliases == {"champion": 1, "challenger": 2}
    assert [e.kind for e in entries] == ["round", "round"]
    body = entries[1].body["extra"]
    assert body["clients"] == [vars(updates[0])] and body["missing"] == ["beta"]
    assert body["global_digest"] == weights_digest(model.get_weights())
    assert body["model"] == "toy@2" and body["promoted"] is False
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_fleet_reports_are_kept_and_exported(tmp_path: Path) -> None:
    with open_store(tmp_path / "store") as store:
        recorder = FleetRecorder(store, "toy", "42")
        recorder.record(1, [
            {"client": "alpha", "node_id": 11, "status": "ok",
             "metrics": {"health.cpu_percent": 50.0, "health.memory_mb": 200.0,
                         "health.rows": 400.0, "health.new_rows": 400.0,
                         "health.newest_row_at": -1.0, "health.local_loss": 0.3,
                         "health.model_version": 0.0, "health.reported_at": 100.0}},
            {"client": "beta", "node_id": 12, "status": "missing", "error": "no reply"}])
        recorder.record(2, [{"client": "beta", "node_id": 13, "status": "ok",
                             "metrics": {"health.rows": 410.0, "health.reported_at": 200.0}}])
        latest = {r["client"]: r for r in FleetTable(store).latest("toy")}
    assert latest["alpha"]["rows"] == 400 and latest["alpha"]["newest_row_at"] is None
    assert latest["beta"]["status"] == "ok" and latest["beta"]["round"] == 2
    text = prometheus_text(latest.values(), now=250.0)
    assert 'amml_fleet_up{federation="toy",client="beta"} 1' in text
    assert 'amml_fleet_rows{federation="toy",client="alpha"} 400' in text
    assert 'amml_fleet_last_seen_seconds{federation="toy",client="alpha"} 150' in text
    assert 'amml_fleet_local_loss{federation="toy",client="alpha"} 0.3' in text


def test_a_client_trains_from_the_global_weights_and_fedprox_pulls_back(
        tmp_path: Path, plan: FederationSpec) -> None:
    client = plan.clients[0]
    me = ClientIdentity(client.name, tmp_path / "alpha-home", client.params)
    data = load_client_data(plan, me)
    assert len(data.train) == 280 and data.rows == 400 and data.newest_row_at is not None
    again = load_client_data(plan, me)  # the workflow's steps come from the client's cache
    assert again.train.equals(data.train)
    start = new_model(plan).get_weights()
    before = evaluate_locally(plan, data, start)["mse"]
    plain, examples, loss = train_locally(plan, data, start, {})
    assert examples == 280 - 24 - 6 + 1 and loss > 0
    assert evaluate_locally(plan, data, plain.get_weights())["mse"] < before
    pulled, _, _ = train_locally(plan, data, start, {"proximal-mu": 50.0})

    def distance(model) -> float:
        return sum(float(np.sum((w - s) ** 2)) for w, s in zip(model.get_weights(), start,
                                                                strict=True))

    assert distance(pulled) < 0.5 * distance(plain)
