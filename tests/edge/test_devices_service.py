"""The service side: devices register with one key each, get their group's assignment and
only edge-variant bytes, report health; ``amml edge`` drives the same through the store."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from amml.cli.main import app as cli
from amml.ops.models.contract import make_model
from amml.registry import ModelRegistry
from amml.serve.app import create_app
from amml.serve.auth import create_key
from amml.serve.config import ServeConfig
from amml.store import Store, open_store
from amml.store.devices import REPORTS_KEPT, list_devices, record_report, reports


def _register_model(store: Store) -> None:
    model = make_model("naive", lookback=8, horizon=2, columns=["v"], outputs=["v"])
    ModelRegistry(store).register("oil", model, signature={"lookback": 8, "horizon": 2})


def test_devices_register_fetch_and_report_over_http(store: Store) -> None:
    from amml.edge.export import export_variant

    _register_model(store)
    _, admin = create_key(store, scope="admin")
    _, reader = create_key(store, scope="read")
    client = TestClient(create_app(ServeConfig(models=["oil"]), store=store))
    with client:
        body = {"name": "pump-1", "group": "pumps"}
        assert client.post("/v1/edge/devices", json=body).status_code == 401
        assert client.post("/v1/edge/devices", json=body,
                           headers={"X-API-Key": reader}).status_code == 403
        made = client.post("/v1/edge/devices", json=body,
                           headers={"X-API-Key": admin}).json()
        again = client.post("/v1/edge/devices", json=body, headers={"X-API-Key": admin})
        assert again.status_code == 422 and "already registered" in again.text
        device = {"Authorization": f"Bearer {made['token']}"}
        forged_token = made["token"].rsplit("_", 1)[0] + "_" + "0" * 64  # right id, wrong secret
        forged = {"Authorization": f"Bearer {forged_token}"}

        answer = client.get("/v1/edge/assignment", headers=device)
        assert answer.status_code == 404 and "amml edge assign pumps" in answer.text
        client.put("/v1/edge/assignments/pumps", json={"model": "oil@1", "format": "int8"},
                   headers={"X-API-Key": admin})
        answer = client.get("/v1/edge/assignment", headers=device)
        assert answer.status_code == 404 and "amml edge export oil@1" in answer.text
        variant = export_variant(store, "oil@1", "int8").variant
        assert client.get("/v1/edge/assignment", headers=forged).status_code == 401
        given = client.get("/v1/edge/assignment", headers=device).json()
        assert given["digest"] == variant.digest and given["manifest"] == variant.manifest
        fetched = client.get(f"/v1/edge/artifacts/{variant.digest}", headers=device)
        assert fetched.status_code == 200 and len(fetched.content) == variant.size
        # the device key opens edge variants only, not the rest of the artifact store
        other = ModelRegistry(store).get("oil", 1).artifact_digest
        assert client.get(f"/v1/edge/artifacts/{other}", headers=device).status_code == 404
        assert client.get(f"/v1/edge/artifacts/{variant.digest}",
                          headers=forged).status_code == 401

        assert client.post("/v1/edge/report", content=b"x" * 70_000,
                           headers=device).status_code == 422
        assert client.post("/v1/edge/report", json={"rss_mb": 41.5},
                           headers=device).status_code == 204
        listed = client.get("/v1/edge/devices", headers={"X-API-Key": reader}).json()
        assert listed["devices"][0]["last_report"] == {"rss_mb": 41.5}


def test_reports_are_bounded_per_device(store: Store) -> None:
    from amml.store.devices import register_device

    device, _ = register_device(store, "d", group="g")
    for i in range(REPORTS_KEPT + 5):
        record_report(store, device.device_id, {"i": i})
    kept = reports(store, device.device_id, limit=10_000)
    assert len(kept) == REPORTS_KEPT and kept[0]["i"] == REPORTS_KEPT + 4


def test_cli_registers_assigns_exports_and_lists(tmp_path) -> None:
    home = tmp_path / "home"
    with open_store(home) as store:
        _register_model(store)
    runner = CliRunner()
    made = runner.invoke(cli, ["edge", "register", "pump-9", "--group", "pumps", "--json",
                               "--home", str(home)])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["token"].startswith("edge_")
    done = runner.invoke(cli, ["edge", "assign", "pumps", "oil@1", "--format", "fp32",
                               "--home", str(home)])
    assert done.exit_code == 0 and "oil@1 (fp32)" in done.output
    bad = runner.invoke(cli, ["edge", "assign", "pumps", "oil@1", "--format", "int4",
                              "--home", str(home)])
    assert bad.exit_code == 2 and "unknown edge format 'int4'" in bad.output
    exported = runner.invoke(cli, ["edge", "export", "oil@1", "--format", "fp32", "--json",
                                   "--home", str(home)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["parity_max_abs"] == 0.0
    listed = runner.invoke(cli, ["edge", "devices", "--json", "--home", str(home)])
    assert [d["name"] for d in json.loads(listed.output)] == ["pump-9"]
    with open_store(home) as store:
        assert list_devices(store, "pumps")[0].name == "pump-9"
