"""``source.prediction_log`` and ``source.labels`` in workflows over a real store: the
prediction log written by the test model server, actuals sent to it, labels given to the
label queue, and ``detect`` choosing its threshold from those labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml import Client, run_workflow
from amml.lang import load_yaml_text
from amml.ops.base import StepContext
from amml.ops.sources.labels import LabelsSource
from amml.ops.sources.prediction_log import PredictionLogSource
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import Store
from amml.store.labels import add_label, add_task
from tests.serve.conftest import LOOKBACK, serving

HOUR = 3600
STAMPS = [f"2024-01-01T{h:02d}:00:00" for h in range(24)]


def _output(store: Store, result, step: str) -> pd.DataFrame:
    return Client(store=store).load_artifact(result.steps[step].outputs["out"].digest)


def _serve_and_send_actuals(store: Store, tmp_path) -> None:
    """Two overlapping forecasts of the naive champion (it repeats the last value) and the
    actuals of five of the six hours they cover."""
    with serving(store, tmp_path) as app:
        for first, last in ((0, 7.0), (2, 9.0)):
            window = [float(first + i) for i in range(LOOKBACK)]
            r = app.post("/v1/models/oil/forecast",
                         json={"window": window, "timestamps": STAMPS[first:first + LOOKBACK]})
            assert r.status_code == 200 and r.json()["forecast"]["OT"] == [last] * 4, r.text
        actual = {STAMPS[h]: float(h) for h in range(8, 13)}  # 08:00 .. 12:00; 13:00 missing
        r = app.post("/v1/models/oil/actuals",
                     json={"timestamps": list(actual), "series": {"OT": list(actual.values())}})
        assert r.status_code == 200, r.text
        app.state.predlog.flush()


def _send_the_missing_actual(store: Store) -> None:
    """The actual of 13:00, the one hour of the forecasts ``_serve_and_send_actuals`` left."""
    from amml.store.labels import record_actuals

    record_actuals(store, "oil", [{"ts": STAMPS[13], "column": "OT", "value": 13.0}])


def test_forecasts_view_joins_actuals_and_computes_the_live_error(store: Store,
                                                                  tmp_path) -> None:
    _serve_and_send_actuals(store, tmp_path)
    workflow = load_yaml_text("""\
name: live
steps:
  served:
    op: source.prediction_log
    with: {model: oil, window: 2}
""")
    result = run_workflow(workflow, store=store)
    table = _output(store, result, "served")
    # forecasts for 08:00..11:00 (first request) and 10:00..13:00 (second, later: it counts)
    assert [t.hour for t in table.index] == [8, 9, 10, 11, 12, 13]
    assert table["OT_predicted"].tolist() == [7.0, 7.0, 9.0, 9.0, 9.0, 9.0]
    assert table["OT_actual"].tolist()[:5] == [8.0, 9.0, 10.0, 11.0, 12.0]
    assert np.isnan(table["OT_actual"].iloc[5]) and np.isnan(table["OT_error"].iloc[5])
    assert table["OT_error"].tolist()[:5] == [1.0, 2.0, 1.0, 2.0, 3.0]
    assert table["OT_mse"].tolist()[:5] == [1.0, 2.5, 2.5, 2.5, 6.5]  # last two points
    assert table["OT_mae"].tolist()[:5] == [1.0, 1.5, 1.5, 1.5, 2.5]
    assert set(table["version"]) == {1}
    metrics = {m["key"]: m["value"] for m in Client(store=store).metrics(result.run_id)}
    assert metrics["labelled_points"] == 5
    assert metrics["live_mse"] == pytest.approx((1 + 4 + 1 + 4 + 9) / 5)
    assert metrics["live_mae"] == pytest.approx(9 / 5)


def test_points_and_inputs_views_and_time_bounds(store: Store, tmp_path) -> None:
    _serve_and_send_actuals(store, tmp_path)
    ctx = StepContext(registry_factory=lambda: type("R", (), {"store": store})())
    points = PredictionLogSource(model="oil", view="points").run(ctx)
    assert len(points) == 8  # every served point, the overlap twice
    assert points["step"].tolist() == [1, 2, 3, 1, 4, 2, 3, 4]
    assert points["endpoint"].unique().tolist() == ["forecast"]
    inputs = PredictionLogSource(model="oil", view="inputs").run(ctx)
    assert [t.hour for t in inputs.index] == list(range(10))  # 00:00..09:00 were sent
    assert inputs["OT"].tolist() == [float(h) for h in range(10)]
    bounded = PredictionLogSource(model="oil", start="2024-01-01T09:00:00",
                                  end="2024-01-01T10:00:00").run(ctx)
    assert [t.hour for t in bounded.index] == [9, 10]
    assert PredictionLogSource(model="oil", since="-1h").run(ctx)["OT_predicted"].notna().all()
    assert PredictionLogSource(model="oil", until=0.0).run(ctx).empty
    assert PredictionLogSource(model="gas").run(ctx).empty
    with pytest.raises(Exception, match="'since' must be a date"):
        PredictionLogSource(model="oil", since="yesterday-ish").run(ctx)
    with pytest.raises(Exception, match="this run has no store"):
        PredictionLogSource(model="oil").run(StepContext())


def test_a_named_store_is_read_and_its_state_keys_the_cache(store: Store, tmp_path) -> None:
    _serve_and_send_actuals(store, tmp_path)
    home = str(tmp_path / ".amml")
    op = PredictionLogSource(model="oil", store=home)
    before = op.source_state()
    assert before is not None
    assert op.run(StepContext())["OT_actual"].notna().sum() == 5
    _send_the_missing_actual(store)
    assert op.source_state() != before  # a new actual: the step runs again
    assert PredictionLogSource(model="oil", store=home, since="-2h").source_state() is None


def test_the_workflows_own_store_keys_the_cache_too(store: Store, tmp_path) -> None:
    """Reading the store the workflow runs with: cached while nothing new was served or
    labelled, run again after a new actual or a new label; a moving window always runs."""
    _serve_and_send_actuals(store, tmp_path)
    workflow = load_yaml_text("""\
name: live
steps:
  served:
    op: source.prediction_log
    with: {model: oil}
  labelled:
    op: source.labels
    with: {model: oil}
  recent:
    op: source.prediction_log
    with: {model: oil, since: "-2h"}
""")

    def statuses() -> dict[str, str]:
        result = run_workflow(workflow, store=store).raise_for_status()
        return {name: outcome.status for name, outcome in result.steps.items()}

    assert statuses() == {"served": "ran", "labelled": "ran", "recent": "ran"}
    assert statuses() == {"served": "cached", "labelled": "cached", "recent": "ran"}
    _send_the_missing_actual(store)
    assert statuses() == {"served": "ran", "labelled": "cached", "recent": "ran"}
    add_label(store, add_task(store, model="oil", kind="manual", start=0.0, end=HOUR), "normal")
    assert statuses() == {"served": "cached", "labelled": "ran", "recent": "ran"}
    assert statuses() == {"served": "cached", "labelled": "cached", "recent": "ran"}


def test_rows_logged_while_the_step_reads_are_read_by_the_next_run(
        store: Store, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server logs while a run reads: the step's output is cached under the state it was
    keyed by, never under the one left behind, so the next run reads the new row."""
    import amml.store.labels as labels_module

    _serve_and_send_actuals(store, tmp_path)
    workflow = load_yaml_text("""\
name: live
steps:
  served:
    op: source.prediction_log
    with: {model: oil}
""")
    read = labels_module.served_points

    def read_then_log(*args, **kwargs):
        points = read(*args, **kwargs)
        _send_the_missing_actual(store)
        return points

    monkeypatch.setattr(labels_module, "served_points", read_then_log)
    first = run_workflow(workflow, store=store).raise_for_status()
    assert np.isnan(_output(store, first, "served")["OT_actual"].iloc[-1])
    monkeypatch.setattr(labels_module, "served_points", read)
    second = run_workflow(workflow, store=store).raise_for_status()
    assert second.steps["served"].status == "ran"
    assert _output(store, second, "served")["OT_actual"].iloc[-1] == 13.0


def _label_the_synthetic_anomalies(store: Store, frame: pd.DataFrame) -> None:
    """A 'normal' task over the whole series, then one 'anomaly' task per run of labelled
    rows, as people would answer the queue."""
    seconds = frame.index.asi8 / 1e9
    whole = add_task(store, model="sensors", kind="manual", start=seconds[0], end=seconds[-1])
    add_label(store, whole, "normal")
    flags = frame["is_anomaly"].to_numpy()
    edges = np.flatnonzero(np.diff(np.r_[0, flags, 0]))
    for first, stop in zip(edges[::2], edges[1::2], strict=True):
        task = add_task(store, model="sensors", kind="alarm", start=seconds[first],
                        end=seconds[stop - 1])
        add_label(store, task, "normal")  # a first answer, corrected: the latest counts
        add_label(store, task, "anomaly")


def test_labels_feed_detect_in_labels_mode(store: Store) -> None:
    frame = make_sensor_frame(periods=500, seed=4, anomalies=5)
    _label_the_synthetic_anomalies(store, frame)
    workflow = load_yaml_text("""\
name: labelled
steps:
  raw:
    op: source.synthetic
    with: {periods: 500, seed: 4, anomalies: 5}
  labelled:
    op: source.labels
    inputs: {table: raw}
    with: {model: sensors, column: label}
  alarms:
    op: detect
    inputs: {table: labelled}
    with:
      detector: rolling_mad
      columns: [temperature, vibration, load]
      label: label
      threshold: {kind: labels}
""")
    result = run_workflow(workflow, store=store)
    table = _output(store, result, "labelled")
    assert table["label"].tolist() == frame["is_anomaly"].astype(float).tolist()
    metrics = {m["key"]: m["value"] for m in Client(store=store).metrics(result.run_id)}
    assert metrics["labelled_rows"] == 500
    assert metrics["anomalous_rows"] == int(frame["is_anomaly"].sum())
    assert 0.0 < metrics["f1"] <= 1.0


def test_labels_without_a_table_regions_and_classes(store: Store) -> None:
    t0 = 1_704_067_200.0
    task = add_task(store, model="oil", kind="drift", start=t0, end=t0 + 5 * HOUR,
                    column="OT")
    add_label(store, task, "normal", regions=[{"start": t0 + 2 * HOUR, "end": t0 + 3 * HOUR,
                                               "label": "anomaly"}])
    other = add_task(store, model="oil", kind="manual", start=t0, end=t0 + HOUR, column="x")
    add_label(store, other, "shutdown")
    ctx = StepContext(registry_factory=lambda: type("R", (), {"store": store})())
    grid = LabelsSource(model="oil", freq="1h").run(ctx)
    assert grid["label"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert LabelsSource(model="oil", freq="1h", positive=["shutdown"], negative=[]
                        ).run(ctx)["label"].tolist()[:2] == [1.0, 1.0]
    assert LabelsSource(model="oil", freq="1h", series="x").run(ctx)["label"].isna().all()
    bounds = LabelsSource(model="oil", freq="1h", start=t0 + HOUR, end=t0 + 2 * HOUR).run(ctx)
    assert bounds["label"].tolist() == [0.0, 1.0]
    assert LabelsSource(model="gas").run(ctx).empty
    with pytest.raises(Exception, match="both positive and negative"):
        LabelsSource(positive=["anomaly"], negative=["anomaly"]).run(ctx)


def test_ground_truth_from_another_source_joins_by_timestamp(store: Store, tmp_path) -> None:
    _serve_and_send_actuals(store, tmp_path)
    truth = tmp_path / "truth.csv"
    # 12:00 corrects the posted actual, 13:00 had none; 'other' is no output of the model
    truth.write_text("time,OT,other\n2024-01-01 12:00:00,20,1\n2024-01-01 13:00:00,21,1\n")
    workflow = load_yaml_text(f"""\
name: truth
steps:
  truth:
    op: source.csv
    with: {{path: {truth}, time: time}}
  served:
    op: source.prediction_log
    inputs: {{actuals: truth}}
    with: {{model: oil}}
""")
    result = run_workflow(workflow, store=store)
    table = _output(store, result, "served")
    assert table["OT_actual"].tolist() == [8.0, 9.0, 10.0, 11.0, 20.0, 21.0]
    assert table["OT_error"].tolist()[-2:] == [11.0, 12.0]
    assert "other_actual" not in table.columns
