"""``amml labels``: the queue from served /detect answers, versioned labels, Label Studio
files both ways, actuals from a CSV and the live error (default store of the test)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import Store
from tests.serve.conftest import HORIZON, LOOKBACK, WINDOW, serving

STAMPS = [f"2024-01-01T{h:02d}:00:00" for h in range(LOOKBACK + HORIZON)]


def _invoke(*args: str):
    result = CliRunner().invoke(app, ["labels", *args], env={"COLUMNS": "200"})
    return result


def _json(*args: str):
    result = _invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _serve_traffic(store: Store, tmp_path) -> None:
    with serving(store, tmp_path) as app_:
        r = app_.post("/v1/models/oil/detect",
                      json={"window": [*WINDOW, 7.0, 7.0, 7.0, 50.0], "timestamps": STAMPS})
        assert r.status_code == 200 and r.json()["anomalous"], r.text
        r = app_.post("/v1/models/oil/forecast",
                      json={"window": WINDOW, "timestamps": STAMPS[:LOOKBACK]})
        assert r.status_code == 200, r.text
        app_.state.predlog.flush()


def test_queue_label_versions_and_label_studio_files(store: Store, tmp_path) -> None:
    _serve_traffic(store, tmp_path)
    assert _json("refresh") == {"alarm": 1, "uncertain": 0, "drift": 0}
    assert _json("refresh")["alarm"] == 1  # the same task, not a second one
    (task,) = _json("tasks", "--status", "open")
    assert task["kind"] == "alarm" and task["column"] == "OT"
    shown = _invoke("tasks")
    assert shown.exit_code == 0 and "alarm" in shown.stdout and "2024-01-01 11:00:00" in \
        shown.stdout
    first = _json("set", str(task["id"]), "anomaly", "--author", "ana")
    assert first["version"] == 1 and first["source"] == "cli"
    second = _json("set", str(task["id"]), "normal", "--reason", "a test pulse",
                   "--region", "2024-01-01T10:00..2024-01-01T11:00=anomaly")
    assert second["version"] == 2 and second["regions"][0]["label"] == "anomaly"
    history = _json("show", str(task["id"]))["history"]
    assert [(h["version"], h["label"]) for h in history] == [(1, "anomaly"), (2, "normal")]
    assert "a test pulse" in _invoke("show", str(task["id"])).stdout
    assert _json("tasks", "--status", "open") == []

    exported = tmp_path / "tasks.json"
    done = _invoke("export", "-o", str(exported))
    assert done.exit_code == 0 and "1 tasks written" in done.stdout
    items = json.loads(exported.read_text())
    assert [len(t["annotations"]) for t in items] == [2]
    assert _json("import", str(exported)) == {"tasks_created": 0, "labels_added": 0,
                                               "unchanged": 1, "skipped": 0}
    items[0]["annotations"].append({"created_at": "2099-01-01T00:00:00Z", "result": [
        {"from_name": "verdict", "to_name": "ts", "type": "choices",
         "value": {"choices": ["anomaly"]}}]})
    exported.write_text(json.dumps(items))
    assert _json("import", str(exported))["labels_added"] == 1
    assert _json("show", str(task["id"]))["label"]["version"] == 3
    config = _invoke("export", "--config")
    assert config.exit_code == 0 and '<Channel column="OT"/>' in config.stdout

    manual = _json("add", "oil", "2024-01-02T00:00", "2024-01-02T06:00", "--column", "OT")
    assert _json("show", str(manual["id"]))["kind"] == "manual"


def test_actuals_from_a_csv_and_the_live_error(store: Store, tmp_path) -> None:
    _serve_traffic(store, tmp_path)
    # the forecast (naive: 7.0) covers 08:00..11:00; detect's own values are actuals too
    csv = tmp_path / "truth.csv"
    csv.write_text("timestamp,OT\n2024-01-01T08:00:00,8\n2024-01-01T09:00:00,9\n")
    assert _json("actuals", "oil", str(csv)) == {"model": "oil", "stored": 2}
    live = _json("live", "oil")["live"]
    assert len(live) == 1 and live[0]["version"] == 1 and live[0]["points"] == 4
    # 08:00 and 09:00 from the CSV (errors 1, 2); 10:00, 11:00 from /detect (0, 43)
    assert live[0]["mse"] == (1 + 4 + 0 + 43 ** 2) / 4
    assert "MSE" in _invoke("live", "oil").stdout
    assert _json("live", "gas") == {"model": "gas", "live": []}


def test_labels_commands_refuse_bad_input_with_messages(store: Store, tmp_path) -> None:
    missing = _invoke("set", "42", "anomaly")
    assert missing.exit_code == 2 and "no label task 42" in missing.output
    bad_region = _invoke("set", "1", "anomaly", "--region", "yesterday")
    assert bad_region.exit_code == 2 and "START..END" in bad_region.output
    csv = tmp_path / "truth.csv"
    csv.write_text("time,OT\n2024-01-01T08:00:00,8\n")
    no_time = _invoke("actuals", "oil", str(csv))
    assert no_time.exit_code == 2 and "--time-column" in no_time.output
    assert _json("actuals", "oil", str(csv), "--time-column", "time")["stored"] == 1
    bad_since = _invoke("live", "oil", "--since", "whenever")
    assert bad_since.exit_code == 2 and "'since' must be a date" in bad_since.output
    unknown = tmp_path / "foreign.json"
    unknown.write_text(json.dumps([{"data": {"ts": {"time": [1, 2]}}, "annotations": []}]))
    no_model = _invoke("import", str(unknown))
    assert no_model.exit_code == 2 and "--model" in no_model.output
