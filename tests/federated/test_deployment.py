"""A real SuperLink with two SuperNodes on loopback: two rounds, one SuperNode killed while it
trains in the first and started again; the ledger, the registry, the fleet table and the wire
are checked.

One deployment serves every test of this module (Flower polls every 3 s, so a round costs
seconds); its processes are stopped by the fixture's finalizer whatever happens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from amml.federated.deployment import Deployment, stop_process
from amml.federated.spec import load_plan
from amml.registry import ModelRegistry
from amml.store import open_store
from amml.store.fleet import FleetTable
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger
from tests.federated.conftest import require_flower, write_federation

ROUNDS = 2


def _wait_rounds(results: Path, count: int, process: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if results.exists():
            document = json.loads(results.read_text())
            if len(document["rounds"]) >= count:
                return document
        if process.poll() is not None:
            break
        time.sleep(0.5)
    log = (results.parent / "dep" / "logs" / "run.log")
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise AssertionError(f"round {count} was not recorded in time; run log:\n{tail}")


def _wait_log(path: Path, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"'{text}' did not appear in {path} within {timeout:g} s")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_flower()
    root = tmp_path_factory.mktemp("federation")
    workflow, plan_file = write_federation(root, rounds=ROUNDS)
    plan = load_plan(plan_file, workflow)
    env = {"AMML_HOME": str(root / "amml"), "AMML_KEY_DIR": str(root / "keys")}
    deployment = Deployment(root / "dep", env=env)
    results, wire, store = root / "results.json", root / "wire", root / "server-store"
    process = None
    try:
        deployment.up(plan.clients)
        process = deployment.submit(plan, results=results, wire_log=wire, store=store)
        # beta answered the server's hello and received its first training message: it is
        # training when it crashes
        _wait_log(deployment.folder / "logs" / "supernode-beta.log",
                  "Start `flwr-clientapp` process", 2, 300)
        deployment.stop_node("beta", kill=True)
        deployment.start_supernode(plan.clients[1])  # it comes back (a new Flower node)
        document = _wait_rounds(results, ROUNDS, process, 600)
        process.wait(timeout=60)
    finally:
        if process is not None and process.poll() is None:
            stop_process(process.pid)
        deployment.down()
    return {"root": root, "plan": plan, "results": document, "wire": wire, "store": store,
            "keys": KeyRing(env["AMML_KEY_DIR"])}


def test_every_round_completes_although_a_supernode_was_killed(federation) -> None:
    rounds = federation["results"]["rounds"]
    assert [r["status"] for r in rounds] == ["ok"] * ROUNDS
    # beta was killed while training in round 1: the round went on with alpha
    assert rounds[0]["answered"] == 1 and "beta" in rounds[0]["missing"]
    # the restarted SuperNode rejoined: beta trained and evaluated in round 2
    assert "beta" in rounds[1]["clients"] and rounds[1]["answered"] >= 2


def test_each_round_is_a_signed_ledger_entry_with_client_digests(federation) -> None:
    with open_store(federation["store"]) as store:
        ledger = Ledger(store, "federated-toy", federation["keys"])
        entries = [e for e in ledger.entries() if e.kind == "round"]
        report = ledger.verify()
    assert report.ok, report.to_json()
    assert [e.epoch for e in entries] == [1, 2]
    first, second = (e.body["extra"] for e in entries)
    assert [c["client"] for c in first["clients"]] == ["alpha"]
    assert first["missing"] == ["beta"]
    assert sorted(c["client"] for c in second["clients"]) == ["alpha", "beta"]
    for update in second["clients"]:
        assert len(update["digest"]) == 64 and update["num_examples"] > 0
    assert second["clients"][0]["digest"] != second["clients"][1]["digest"]
    assert entries[0].checkpoint["digest"] != entries[1].checkpoint["digest"]


def test_each_round_is_a_registered_version_and_the_policy_promotes(federation) -> None:
    rounds = federation["results"]["rounds"]
    with open_store(federation["store"]) as store:
        registry = ModelRegistry(store)
        versions = registry.versions("toy")
        champion = registry.alias_version("toy", "champion")
        challenger = registry.alias_version("toy", "challenger")
    assert sorted(v.version for v in versions) == [1, 2]
    assert [r["version"] for r in rounds] == [1, 2]
    assert challenger == 2
    best = min(rounds, key=lambda r: r["mse"])
    assert champion == best["version"]  # the policy kept the lowest mse
    assert all(v.metrics["round"] == v.version for v in versions)


def test_the_fleet_table_keeps_health_and_the_dropout(federation) -> None:
    with open_store(federation["store"]) as store:
        history = FleetTable(store).history("toy")
        latest = {r["client"]: r for r in FleetTable(store).latest("toy")}
    beta = sorted((r for r in history if r["client"] == "beta"), key=lambda r: r["id"])
    assert [r["status"] for r in beta if r["round"] == 1] == ["missing"]
    assert latest["beta"]["status"] == "ok" and latest["beta"]["round"] == ROUNDS
    ok = [r for r in history if r["status"] == "ok"]
    assert {r["round"] for r in ok} == {0, 1, 2}  # 0: the answers to the server's hello
    for row in ok:
        assert row["rows"] == 400 and row["memory_mb"] > 10 and row["cpu_percent"] >= 0
        assert row["newest_row_at"] > 0
        assert (row["local_loss"] is None) == (row["round"] == 0)  # no training, no loss
    # everything was new at each client's first report (beta's killed round wrote none)
    assert {r["new_rows"] for r in ok if r["round"] == 1} == {400}
    assert {r["model_version"] for r in ok if r["round"] == 2} == {1}


def test_no_raw_rows_cross_the_wire(federation) -> None:
    """Only the model's tensors, counts and summary numbers travel: no array has the
    shape of a client's rows, and no run of a client's values (raw or scaled, float32 or
    float64) occurs in the bytes of any array that crossed the wire."""
    wire = federation["wire"]
    entries = [json.loads(line) for line in (wire / "wire.jsonl").read_text().splitlines()]
    blob = (wire / "wire.bin").read_bytes()
    assert entries and blob
    from amml.federated.client import new_model

    allowed = {tuple(w.shape) for w in new_model(federation["plan"]).get_weights()}
    for entry in entries:
        for arrays in entry.get("arrays", {}).values():
            assert {tuple(a["shape"]) for a in arrays} <= allowed
        for metrics in entry.get("metrics", {}).values():
            assert all(np.isscalar(v) for v in metrics.values())
    for name in ("alpha", "beta"):
        values = pd.read_csv(federation["root"] / f"{name}.csv")["y"].dropna().to_numpy()
        scaled = (values - values[:280].mean()) / values[:280].std()
        for series in (values, scaled):
            for dtype in (np.float64, np.float32):
                for start in (0, 150, 300):
                    assert series[start : start + 4].astype(dtype).tobytes() not in blob
    # the search does find what did travel: the last global model's weights
    with open_store(federation["store"]) as store:
        registry = ModelRegistry(store)
        last = registry.load(registry.get("toy", ROUNDS))
    for weight in last.get_weights():
        assert np.ascontiguousarray(weight).tobytes() in blob
