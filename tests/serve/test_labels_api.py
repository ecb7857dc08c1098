"""Actuals, the label queue and Label Studio import/export on the test application (real
store, keys and request log)."""

from __future__ import annotations

import copy

from amml.store.labels import count_labels, label_history, live_window
from tests.serve.conftest import HORIZON, LOOKBACK, WINDOW, Served

STAMPS = [f"2024-01-01T{h:02d}:00:00" for h in range(LOOKBACK + HORIZON)]
#: a detect window: the naive champion forecasts 7; the last step is far off
ALARMING = [*WINDOW, 7.0, 7.0, 7.0, 50.0]
#: a close call: one step scores about 3.4, under the threshold 4 but over 0.75 x 4
CLOSE = [*WINDOW, 7.0, 17.0, 7.0, 7.0]


def test_actuals_join_served_forecasts_by_timestamp(served: Served) -> None:
    r = served.post("/v1/models/oil/forecast",
                    json={"window": WINDOW, "timestamps": STAMPS[:LOOKBACK]})
    assert r.status_code == 200, r.text
    ahead = r.json()["timestamps"]
    assert len(ahead) == HORIZON
    served.state.predlog.flush()
    body = {"actuals": [{"ts": ahead[0], "column": "OT", "value": 8.0},
                        {"ts": ahead[1], "column": "OT", "value": 6.0}]}
    r = served.post("/v1/models/oil/actuals", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "oil", "stored": 2}
    frame = live_window(served.store, "oil")
    assert frame["predicted"].tolist() == [7.0, 7.0]  # the naive champion, version 1
    assert frame["actual"].tolist() == [8.0, 6.0] and set(frame["version"]) == {1}
    # the column form: timestamps with series
    r = served.post("/v1/models/oil/actuals",
                    json={"timestamps": ahead[2:], "series": {"OT": [9.0, 5.0]}})
    assert r.status_code == 200 and r.json()["stored"] == 2
    assert live_window(served.store, "oil")["actual"].tolist() == [8.0, 6.0, 9.0, 5.0]


def test_actuals_need_a_predict_key_for_the_model_and_a_readable_body(served: Served) -> None:
    row = {"actuals": [{"ts": STAMPS[0], "column": "b", "value": 1.0}]}
    assert served.client.post("/v1/models/multi/actuals", json=row).status_code == 401
    assert served.post("/v1/models/multi/actuals", key="read", json=row).status_code == 403
    assert served.post("/v1/models/multi/actuals", key="oil-only", json=row).status_code == 403
    assert served.post("/v1/models/nope/actuals", json=row).status_code == 404
    bad = served.post("/v1/models/multi/actuals", json={"actuals": [{"ts": "soon",
                                                                     "column": "b",
                                                                     "value": 1}]})
    assert bad.status_code == 422 and "actual 0" in bad.json()["detail"]
    empty = served.post("/v1/models/multi/actuals", json={})
    assert empty.status_code == 422 and "no actuals" in empty.json()["detail"]
    uneven = served.post("/v1/models/multi/actuals",
                         json={"timestamps": STAMPS[:2], "series": {"b": [1.0]}})
    assert uneven.status_code == 422 and "1 values for 2 timestamps" in uneven.json()["detail"]
    assert served.post("/v1/models/multi/actuals", json=row).status_code == 200


def _queue_detect_windows(served: Served) -> list[dict]:
    for values in (ALARMING, CLOSE, [*WINDOW, *[7.0] * HORIZON]):
        r = served.post("/v1/models/oil/detect", json={"window": values, "timestamps": STAMPS})
        assert r.status_code == 200, r.text
    served.state.predlog.flush()
    r = served.post("/v1/labels/refresh")
    assert r.status_code == 200, r.text
    assert r.json()["queued"] == {"alarm": 1, "uncertain": 1, "drift": 0}
    again = served.post("/v1/labels/refresh")  # nothing is queued twice
    assert again.json()["open"] == 2
    listed = served.get("/v1/labels/tasks?status=open")
    assert listed.status_code == 200, listed.text
    return listed.json()["tasks"]


def test_alarms_and_close_calls_are_queued_and_labels_are_versioned(served: Served) -> None:
    queue = _queue_detect_windows(served)
    by_kind = {t["kind"]: t for t in queue}
    alarm = by_kind["alarm"]
    assert alarm["model"] == "oil" and alarm["column"] == "OT" and alarm["score"] > 4.0
    assert alarm["details"]["steps"] == [3]
    assert alarm["start"] == alarm["end"]  # the one alarming step, 2024-01-01T11:00
    assert alarm["start"] == 1704106800.0
    assert 3.0 <= by_kind["uncertain"]["score"] < 4.0
    task = alarm["id"]
    first = served.post(f"/v1/labels/{task}", json={"label": "anomaly"})
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1 and first.json()["author"].startswith("key ")
    second = served.post(f"/v1/labels/{task}", json={
        "label": "normal", "reason": "a sensor test", "author": "ana",
        "regions": [{"start": STAMPS[9], "end": STAMPS[10], "label": "anomaly"}]})
    assert second.status_code == 201 and second.json()["version"] == 2
    shown = served.get(f"/v1/labels/{task}").json()
    assert [(h["version"], h["label"]) for h in shown["history"]] == [(1, "anomaly"),
                                                                      (2, "normal")]
    assert shown["label"]["version"] == 2 and shown["status"] == "labelled"
    assert [t["id"] for t in served.get("/v1/labels/tasks?status=labelled").json()["tasks"]
            ] == [task]
    assert served.get("/v1/labels/tasks?kind=uncertain").json()["count"] == 1
    assert count_labels(served.store, model="oil") == 2


def test_the_label_api_checks_keys_and_bodies(served: Served) -> None:
    queue = _queue_detect_windows(served)
    task = queue[0]["id"]
    assert served.client.get("/v1/labels/tasks").status_code == 401
    assert served.client.post(f"/v1/labels/{task}", json={"label": "x"}).status_code == 401
    assert served.post(f"/v1/labels/{task}", key="read",
                       json={"label": "anomaly"}).status_code == 403
    assert served.get("/v1/labels/tasks?model=multi", key="oil-only").status_code == 403
    assert served.get("/v1/labels/tasks", key="oil-only").json()["count"] == 2
    assert served.post("/v1/labels/999", json={"label": "anomaly"}).status_code == 404
    no_label = served.post(f"/v1/labels/{task}", json={"regions": []})
    assert no_label.status_code == 422 and "label" in no_label.json()["detail"]
    blank = served.post(f"/v1/labels/{task}", json={"label": " "})
    assert blank.status_code == 422 and "1 to 64 characters" in blank.json()["detail"]
    assert served.get("/v1/labels/tasks?kind=guess").status_code == 422
    assert label_history(served.store, task) == []


def test_label_studio_export_and_import_round_trip(served: Served) -> None:
    queue = _queue_detect_windows(served)
    alarm = next(t for t in queue if t["kind"] == "alarm")
    served.post(f"/v1/labels/{alarm['id']}", json={"label": "anomaly", "author": "ana"})
    exported = served.get("/v1/labels/export")
    assert exported.status_code == 200, exported.text
    tasks = exported.json()
    assert len(tasks) == 2
    mine = next(t for t in tasks if t["id"] == alarm["id"])
    series = mine["data"]["ts"]
    assert series["OT"] == ALARMING and len(series["time"]) == LOOKBACK + HORIZON
    assert series["time"][0] == 1704067200000  # epoch milliseconds
    (annotation,) = mine["annotations"]
    assert annotation["result"][0]["value"] == {"choices": ["anomaly"]}
    assert mine["predictions"][0]["result"][0]["type"] == "timeserieslabels"
    # unchanged: importing the export adds nothing
    unchanged = served.post("/v1/labels/import", json=tasks)
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json() == {"tasks_created": 0, "labels_added": 0, "unchanged": 1,
                                "skipped": 1}
    # an annotator relabels in Label Studio: a later annotation marking one region
    edited = copy.deepcopy(tasks)
    target = next(t for t in edited if t["id"] == alarm["id"])
    target["annotations"].append({
        "id": 77, "completed_by": 3, "created_at": "2099-01-01T00:00:00Z",
        "result": [{"from_name": "label", "to_name": "ts", "type": "timeserieslabels",
                    "value": {"start": series["time"][10], "end": series["time"][11],
                              "instant": False, "timeserieslabels": ["anomaly"]}}]})
    other = next(t for t in edited if t["id"] != alarm["id"])
    other["annotations"] = [{"id": 78, "result": [{"from_name": "verdict", "to_name": "ts",
                                                   "type": "choices",
                                                   "value": {"choices": ["normal"]}}]}]
    r = served.post("/v1/labels/import", json=edited)
    assert r.json() == {"tasks_created": 0, "labels_added": 2, "unchanged": 0, "skipped": 0}
    history = served.get(f"/v1/labels/{alarm['id']}").json()["history"]
    assert [h["version"] for h in history] == [1, 2]
    assert history[1]["regions"] == [{"start": 1704103200.0, "end": 1704106800.0,
                                      "label": "anomaly"}]
    assert history[1]["source"] == "label-studio"
    # the new state exports and imports back unchanged
    again = served.get("/v1/labels/export").json()
    assert served.post("/v1/labels/import", json=again).json()["labels_added"] == 0
    # a task from elsewhere is queued for the model named
    foreign = [{"id": 5, "data": {"ts": {"time": series["time"][:3], "OT": [1.0, 2.0, 3.0]}},
                "annotations": [{"result": [{"type": "choices", "from_name": "verdict",
                                             "to_name": "ts",
                                             "value": {"choices": ["anomaly"]}}]}]}]
    missing = served.post("/v1/labels/import", json=foreign)
    assert missing.status_code == 422 and "--model" in missing.json()["detail"]
    made = served.post("/v1/labels/import?model=oil", json=foreign).json()
    assert made == {"tasks_created": 1, "labels_added": 1, "unchanged": 0, "skipped": 0}
    assert served.post("/v1/labels/import?model=multi", key="oil-only",
                       json=foreign).status_code == 403


def test_the_label_routes_are_in_the_openapi_document(served: Served) -> None:
    document = served.client.get("/openapi.json").json()
    paths = document["paths"]
    for path, method in [("/v1/models/{name}/actuals", "post"), ("/v1/labels/tasks", "get"),
                         ("/v1/labels/{task_id}", "post"), ("/v1/labels/{task_id}", "get"),
                         ("/v1/labels/export", "get"), ("/v1/labels/import", "post"),
                         ("/v1/labels/refresh", "post")]:
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}, {"apiKey": []}], path
        assert operation["tags"] == ["labels"]
    schema = paths["/v1/labels/{task_id}"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert "label" in schema["required"]
    assert "201" in paths["/v1/labels/{task_id}"]["post"]["responses"]
    assert schema["properties"]["regions"]["items"]["properties"]["start"]
    config = served.get("/v1/labels/config?model=oil").json()["label_config"]
    assert '<Channel column="OT"/>' in config and 'name="verdict"' in config
