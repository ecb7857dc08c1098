"""The label queue's producers (drift events) and the Label Studio round trip between two
stores (amml.store.label_queue, amml.store.label_studio)."""

from __future__ import annotations

from amml.store import Store, open_store
from amml.store.drift_events import DriftRecords
from amml.store.label_queue import queue_drift_events
from amml.store.label_studio import export_tasks, import_tasks, labeling_config
from amml.store.labels import add_label, add_task, label_history, record_actuals, tasks

T0 = 1_704_067_200.0


def test_drift_events_are_queued_once_with_their_span(store: Store) -> None:
    records = DriftRecords(store)
    records.add_event(model="oil", version=2, detector="error", detected_at=T0 + 7200,
                      drift_point=T0 + 3600, confidence=0.99, score=3.0, threshold=1.0,
                      features=["OT"])
    records.add_event(model="gas", version=1, detector="mmd", detected_at=T0,
                      drift_point=T0 - 60, confidence=0.9, score=1.5, threshold=1.0)
    first = queue_drift_events(store, "oil")
    assert queue_drift_events(store, "oil") == first  # the same task, not a second
    (task,) = tasks(store, model="oil")
    assert (task["kind"], task["start"], task["end"]) == ("drift", T0 + 3600, T0 + 7200)
    assert task["details"]["detector"] == "error" and task["details"]["features"] == ["OT"]
    assert len(queue_drift_events(store)) == 2 and len(tasks(store)) == 2


def test_label_studio_export_moves_tasks_and_label_history_to_another_store(
        store: Store, tmp_path) -> None:
    record_actuals(store, "oil", [{"ts": T0 + h * 3600, "column": "OT", "value": float(h)}
                                  for h in range(6)])
    drift = add_task(store, model="oil", kind="drift", start=T0 + 3600, end=T0 + 7200,
                     key="drift:7")
    add_label(store, drift, "anomaly", author="ana")
    add_label(store, drift, "normal", author="bo", reason="maintenance",
              regions=[{"start": T0 + 3600, "end": T0 + 5400, "label": "anomaly"}])
    add_task(store, model="oil", kind="manual", start=T0, end=T0 + 600)  # still open
    exported = export_tasks(store)
    # the series shown for the drift task: the actuals in its range padded by half its
    # length (01:00..02:00 padded to 00:30..02:30), time in epoch milliseconds
    assert exported[0]["data"]["ts"]["OT"] == [1.0, 2.0]
    assert exported[0]["data"]["ts"]["time"] == [(T0 + 3600) * 1000, (T0 + 7200) * 1000]
    with open_store(tmp_path / "other") as other:
        counts = import_tasks(other, exported)
        assert counts == {"tasks_created": 2, "labels_added": 2, "unchanged": 0,
                          "skipped": 1}
        moved = tasks(other)
        assert [(t["kind"], t["start"], t["end"], t["key"]) for t in moved] == [
            (t["kind"], t["start"], t["end"], t["key"]) for t in tasks(store)]
        assert moved[0]["key"] == "drift:7" and moved[1]["status"] == "open"
        history = label_history(other, moved[0]["id"])
        assert [(h["version"], h["label"], h["author"]) for h in history] == [
            (1, "anomaly", "ana"), (2, "normal", "bo")]
        assert history[1]["regions"] == label_history(store, drift)[1]["regions"]
        assert history[1]["reason"] == "maintenance"
        # and back again: nothing changes on either side
        assert import_tasks(other, export_tasks(other))["labels_added"] == 0
        assert import_tasks(store, export_tasks(other))["labels_added"] == 0
        assert import_tasks(other, exported)["tasks_created"] == 0


def test_labeling_config_names_the_controls_the_export_uses() -> None:
    text = labeling_config(["OT", "load"])
    for part in ('<TimeSeriesLabels name="label" toName="ts">', 'value="$ts"',
                 'valueType="json"', 'timeColumn="time"', '<Channel column="load"/>',
                 '<Choices name="verdict" toName="ts"', '<Label value="anomaly"/>'):
        assert part in text


def test_forecast_errors_far_from_the_usual_are_queued(store: Store) -> None:
    import json

    from amml.store.label_queue import queue_forecast_errors, refresh_queue
    from amml.store.prediction_log import PredictionLogTable

    stamps = [T0 + h * 3600 for h in range(12)]
    answer = {"model": "oil", "version": 4, "horizon": 12, "outputs": ["OT"],
              "forecast": {"OT": [0.0] * 12}, "timestamps": stamps}
    PredictionLogTable(store).append([dict(
        model="oil", version=4, endpoint="forecast", received_at=1.0, latency_ms=1.0,
        status=200, request=json.dumps({"window": [[0.0]] * 4}),
        response=json.dumps(answer))])
    # median 0.075, robust deviation 1.4826 x 0.15: 9 and 9.5 score ~40, 0.85 ~3.5
    errors = [0.1, -0.1, 0.2, -0.2, 0.0, 0.1, -0.1, 9.0, 9.5, 0.05, 0.85, -0.05]
    record_actuals(store, "oil", [{"ts": t, "column": "OT", "value": e}
                                  for t, e in zip(stamps, errors, strict=True)])
    found = queue_forecast_errors(store, "oil")
    assert len(found["alarm"]) == 1 and len(found["uncertain"]) == 1
    alarm = next(t for t in tasks(store) if t["kind"] == "alarm")
    assert (alarm["start"], alarm["end"]) == (stamps[7], stamps[8])  # one run, one task
    assert alarm["details"]["versions"] == [4] and alarm["score"] > 4.0
    uncertain = next(t for t in tasks(store) if t["kind"] == "uncertain")
    assert uncertain["start"] == uncertain["end"] == stamps[10]
    assert refresh_queue(store) == {"alarm": 1, "uncertain": 1, "drift": 0}
    assert len(tasks(store)) == 2  # queued once
