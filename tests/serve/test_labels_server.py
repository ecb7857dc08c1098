"""The operations data loop through a real ``amml serve`` process: forecasts served over
HTTP, ground truth posted later, the live error read back by a workflow, an alarm queued,
labelled twice and read back as a label column."""

from __future__ import annotations

import time

import httpx

from amml import Client, run_workflow
from amml.lang import load_yaml_text
from amml.serve.auth import create_key
from tests.serve.conftest import HORIZON, LOOKBACK, WINDOW, register_models, uvicorn_server

STAMPS = [f"2024-01-01T{h:02d}:00:00" for h in range(LOOKBACK + HORIZON)]
WORKFLOW = """\
name: live-error
steps:
  served:
    op: source.prediction_log
    with: {model: oil}
  labels:
    op: source.labels
    inputs: {table: served}
    with: {model: oil}
"""


def test_served_forecasts_actuals_and_labels_through_a_real_server(store, tmp_path) -> None:
    register_models(store)
    _, token = create_key(store, scope="predict", label="labeller")
    home = str(tmp_path / ".amml")
    with uvicorn_server(home, "--model", "oil@champion") as (base, _server), \
            httpx.Client(base_url=base, timeout=10,
                         headers={"Authorization": f"Bearer {token}"}) as http:
        r = http.post("/v1/models/oil/forecast",
                      json={"window": WINDOW, "timestamps": STAMPS[:LOOKBACK]})
        assert r.status_code == 200, r.text
        ahead = r.json()["timestamps"]  # 08:00 .. 11:00, all 7.0 (naive)
        r = http.post("/v1/models/oil/detect",
                      json={"window": [*WINDOW, 7.0, 7.0, 7.0, 50.0], "timestamps": STAMPS})
        assert r.status_code == 200 and r.json()["anomalous"], r.text
        r = http.post("/v1/models/oil/actuals",
                      json={"timestamps": ahead[:2], "series": {"OT": [7.5, 6.0]}})
        assert r.status_code == 200 and r.json()["stored"] == 2, r.text
        deadline = time.monotonic() + 30  # the request log is written in the background
        queued: dict = {}
        while time.monotonic() < deadline:
            queued = http.post("/v1/labels/refresh").json()
            if queued.get("queued", {}).get("alarm"):
                break
            time.sleep(0.2)
        assert queued["queued"]["alarm"] == 1, queued
        (task,) = http.get("/v1/labels/tasks", params={"kind": "alarm"}).json()["tasks"]
        assert http.post(f"/v1/labels/{task['id']}", json={"label": "normal"}).status_code \
            == 201
        again = http.post(f"/v1/labels/{task['id']}", json={"label": "anomaly"})
        assert again.status_code == 201 and again.json()["version"] == 2
        assert again.json()["author"] == "labeller"
    result = run_workflow(load_yaml_text(WORKFLOW), store=store)
    table = Client(store=store).load_artifact(result.steps["labels"].outputs["out"].digest)
    # the detect request's last four rows are actuals too: 08:00..10:00 are 7.0, 11:00 is 50
    assert [t.hour for t in table.index] == [8, 9, 10, 11]
    assert table["OT_predicted"].tolist() == [7.0, 7.0, 7.0, 7.0]
    assert table["OT_actual"].tolist() == [7.5, 6.0, 7.0, 50.0]  # posted actuals first
    assert table["label"].isna().tolist() == [True, True, True, False]
    assert table["label"].iloc[3] == 1.0  # the alarm at 11:00, labelled anomaly (latest)
