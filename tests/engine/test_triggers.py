"""Trigger evaluation on a real store: cron, drift events, new data, new labels."""

from __future__ import annotations

from pathlib import Path

from amml.engine.loading import compile_workflow
from amml.engine.triggers import check_trigger
from amml.lang.validate import ValidatedWorkflow
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.operations import OperationsRecords

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a whole hour


def workflow(tmp_path: Path, triggers: str) -> ValidatedWorkflow:
    csv = tmp_path / "data.csv"
    if not csv.exists():
        csv.write_text("time,x\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n")
    path = tmp_path / "w.yaml"
    path.write_text(f"""\
name: retrain
steps:
  raw:
    op: source.csv
    with: {{path: {csv}, time: time}}
triggers:
{triggers}
""")
    return compile_workflow(path)


def evaluate(store: Store, wf: ValidatedWorkflow, now: float, index: int = 0):
    """Evaluate and keep the cursor, as the agent does when it starts the run."""
    check = check_trigger(store, wf, wf.ir.triggers[index], now=now)
    check.commit(OperationsRecords(store))
    return check


def test_cron_fires_once_per_scheduled_minute(store: Store, tmp_path: Path) -> None:
    wf = workflow(tmp_path, '  - cron: "0 * * * *"')
    first = evaluate(store, wf, T0 + 30)  # the current minute counts on first sight
    assert first.fired and "due at 2027-01-15T08:00:00Z" in first.reason
    assert not evaluate(store, wf, T0 + 90).fired  # already handled
    assert not evaluate(store, wf, T0 + 3599).fired
    assert evaluate(store, wf, T0 + 3600 + 5).fired  # the next hour
    assert not evaluate(store, wf, T0 + 3600 + 65).fired


def test_a_missed_schedule_fires_once_on_the_next_evaluation(store: Store,
                                                             tmp_path: Path) -> None:
    wf = workflow(tmp_path, '  - cron: "*/5 * * * *"')
    evaluate(store, wf, T0 + 1)
    late = evaluate(store, wf, T0 + 3 * 3600)  # the agent was down for three hours
    assert late.fired and "due at 2027-01-15T08:05:00Z" in late.reason
    assert not evaluate(store, wf, T0 + 3 * 3600 + 10).fired


def test_drift_fires_on_a_new_event_of_the_model_only(store: Store, tmp_path: Path) -> None:
    wf = workflow(tmp_path, "  - drift: {model: oil, detector: attribution, "
                            "min_confidence: 0.9}")
    records = DriftRecords(store)

    def event(model: str = "oil", detector: str = "attribution", confidence: float = 0.99):
        records.add_event(model=model, version=1, detector=detector, detected_at=T0,
                          drift_point=T0 - 600, confidence=confidence, score=2.0,
                          threshold=1.0, features=["OT"])

    event()  # before the agent watched: history, not a trigger
    assert not evaluate(store, wf, T0).fired
    event(model="other")
    event(detector="error")
    event(confidence=0.5)
    assert not evaluate(store, wf, T0 + 1).fired
    event()
    fired = evaluate(store, wf, T0 + 2)
    assert fired.fired and "drift event 5 of oil@1: attribution" in fired.reason
    assert "drift point 2027-01-15T07:50:00Z" in fired.reason
    assert not evaluate(store, wf, T0 + 3).fired  # each event fires once


def test_new_data_in_a_source_fires(store: Store, tmp_path: Path) -> None:
    wf = workflow(tmp_path, "  - data: raw")
    assert not evaluate(store, wf, T0).fired  # first sight: remembers the file's state
    assert not evaluate(store, wf, T0 + 1).fired
    with (tmp_path / "data.csv").open("a") as handle:
        handle.write("2024-01-01 02:00,3\n")
    fired = evaluate(store, wf, T0 + 2)
    assert fired.fired and fired.reason == "new data in step 'raw'"
    assert not evaluate(store, wf, T0 + 3).fired


def test_new_actuals_in_the_workflows_own_prediction_log_fire(store: Store,
                                                              tmp_path: Path) -> None:
    """A step reading the store the agent runs the workflow with: its state is read there."""
    from amml.store.labels import record_actuals

    path = tmp_path / "live.yaml"
    path.write_text("""\
name: live
steps:
  served:
    op: source.prediction_log
    with: {model: oil}
triggers:
  - data: served
""")
    wf = compile_workflow(path)
    assert not evaluate(store, wf, T0).fired
    record_actuals(store, "oil", [{"ts": T0 - 3600, "column": "OT", "value": 3.0}])
    fired = evaluate(store, wf, T0 + 1)
    assert fired.fired and fired.reason == "new data in step 'served'"
    assert not evaluate(store, wf, T0 + 2).fired


def test_cursors_are_kept_per_trigger_and_workflow(store: Store, tmp_path: Path) -> None:
    wf = workflow(tmp_path, '  - cron: "0 * * * *"\n  - data: raw')
    evaluate(store, wf, T0 + 30, 0)
    evaluate(store, wf, T0 + 30, 1)
    keys = {t.key for t in wf.ir.triggers}
    stored = {k for k in keys if OperationsRecords(store).cursor("retrain", k) is not None}
    assert stored == keys and len(keys) == 2


def test_labels_fire_after_count_new_labels(store: Store, tmp_path: Path) -> None:
    from amml.store import labels

    wf = workflow(tmp_path, "  - labels: {count: 3, model: oil}")
    import time

    now = time.time()
    assert not evaluate(store, wf, now - 1).fired  # first sight: counts from now on
    rows = [{"ts": 1_700_000_000.0 + 3600 * i, "column": "OT", "value": float(i)}
            for i in range(2)]
    labels.record_actuals(store, "oil", rows)
    assert not evaluate(store, wf, time.time()).fired  # 2 < 3
    labels.record_actuals(store, "other", [{"ts": 1_700_100_000.0, "column": "OT",
                                            "value": 1.0}])
    assert not evaluate(store, wf, time.time()).fired  # another model's
    task = labels.add_task(store, model="oil", kind="drift", start=1_700_000_000.0,
                           end=1_700_003_600.0)
    labels.add_label(store, task, "anomaly", author="ana")  # a label counts as well
    fired = evaluate(store, wf, time.time())
    assert fired.fired and "3 new labels of oil" in fired.reason
    assert not evaluate(store, wf, time.time()).fired  # counted from the firing on


def test_a_drift_trigger_can_wait_for_the_new_regime(store: Store, tmp_path: Path) -> None:
    import time

    wf = workflow(tmp_path, "  - drift: {model: oil, wait_s: 30}")
    records = DriftRecords(store)
    now = time.time()
    assert not evaluate(store, wf, now).fired
    records.add_event(model="oil", version=1, detector="error", detected_at=T0,
                      drift_point=T0, confidence=0.99, score=2.0, threshold=1.0)
    assert not evaluate(store, wf, now + 10).fired  # recorded 10 s ago: waits
    assert not evaluate(store, wf, now + 20).fired
    fired = evaluate(store, wf, now + 40)
    assert fired.fired and "drift event 1" in fired.reason
    assert not evaluate(store, wf, now + 50).fired


def test_a_drift_trigger_can_watch_only_the_serving_version(store: Store,
                                                           tmp_path: Path) -> None:
    from amml.ops.models.forecaster import Forecaster
    from amml.registry import ModelRegistry

    registry = ModelRegistry(store)
    for _ in range(2):
        registry.register("oil", Forecaster("naive", 4, 2))
    registry.set_alias("oil", "champion", 1)
    wf = workflow(tmp_path, "  - drift: {model: oil, alias: champion}")
    records = DriftRecords(store)

    def event(version: int) -> None:
        records.add_event(model="oil", version=version, detector="input-ks", detected_at=T0,
                          drift_point=T0, confidence=1.0, score=1.0, threshold=0.5)

    assert not evaluate(store, wf, T0).fired
    event(1)
    assert evaluate(store, wf, T0 + 1).fired
    registry.set_alias("oil", "champion", 2)  # promoted: v1's drift is history now
    event(1)
    assert not evaluate(store, wf, T0 + 2).fired
    event(2)
    fired = evaluate(store, wf, T0 + 3)
    assert fired.fired and "of oil@2" in fired.reason
