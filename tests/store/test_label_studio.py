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
