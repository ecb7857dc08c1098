"""Actuals, live error, the label queue and versioned labels (amml.store.labels)."""

from __future__ import annotations

import json
import time

import pytest

from amml.store import Store, open_store
from amml.store.labels import (
    LIVE_COLUMNS,
    LabelError,
    add_label,
    add_task,
    count_labels,
    get_task,
    label_history,
    label_intervals,
    labelled_inputs,
    live_window,
    record_actuals,
    tasks,
)
from amml.store.prediction_log import PredictionLogTable

HOUR = 3600.0
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def log_forecast(store: Store, received_at: float, first: float, window: list[float],
                 forecast: list[float], version: int = 1, model: str = "oil") -> None:
    """One logged forecast request as the server writes it: the JSON body as sent, the
    answer with the forecast's timestamps."""
    stamps = [iso(first + i * HOUR) for i in range(len(window))]
    ahead = [iso(first + (len(window) + i) * HOUR) for i in range(len(forecast))]
    body = {"window": [[v] for v in window], "columns": ["OT"], "timestamps": stamps}
    answer = {"model": model, "version": version, "horizon": len(forecast), "outputs": ["OT"],
              "forecast": {"OT": forecast}, "timestamps": ahead}
    PredictionLogTable(store).append([dict(
        model=model, version=version, endpoint="forecast", received_at=received_at,
        latency_ms=1.0, status=200, request=json.dumps(body), response=json.dumps(answer))])


@pytest.fixture
def store(tmp_path) -> Store:
    opened = open_store(tmp_path / ".amml")
    yield opened
    opened.close()


def test_live_window_joins_served_forecasts_with_later_actuals_by_timestamp(store) -> None:
    # window rows at T0, T0+1h; forecast for T0+2h, T0+3h, T0+4h
    log_forecast(store, 100.0, T0, [1.0, 2.0], [3.0, 4.0, 5.0])
    assert list(live_window(store, "oil").columns) == LIVE_COLUMNS
    assert live_window(store, "oil").empty  # no actuals yet
    stored = record_actuals(store, "oil", [
        {"ts": iso(T0 + 2 * HOUR), "column": "OT", "value": 2.5},  # ISO text
        {"ts": T0 + 3 * HOUR, "column": "OT", "value": 4.5},  # epoch seconds
        {"ts": T0 + 9 * HOUR, "column": "OT", "value": 9.0},  # nothing served for it
    ])
    assert stored == 3
    frame = live_window(store, "oil")
    assert frame["ts"].tolist() == [T0 + 2 * HOUR, T0 + 3 * HOUR]
    assert frame["predicted"].tolist() == [3.0, 4.0]
    assert frame["actual"].tolist() == [2.5, 4.5]
    assert set(frame["version"]) == {1} and set(frame["received_at"]) == {100.0}
    # a corrected actual (milliseconds this time) replaces the first one
    record_actuals(store, "oil", [{"ts": (T0 + 2 * HOUR) * 1000, "column": "OT", "value": 3.5}])
    assert live_window(store, "oil")["actual"].tolist() == [3.5, 4.5]
    # only the OT column asked for; another model sees nothing
    assert live_window(store, "oil", column="other").empty
    assert live_window(store, "gas").empty


def test_the_latest_served_forecast_of_a_timestamp_counts_and_since_bounds_serving(
        store) -> None:
    log_forecast(store, 100.0, T0, [1.0, 2.0], [3.0, 4.0], version=1)
    log_forecast(store, 200.0, T0 + HOUR, [2.0, 3.0], [3.3, 4.4], version=2)  # T0+3h, T0+4h
    record_actuals(store, "oil", [{"ts": T0 + h * HOUR, "column": "OT", "value": float(h)}
                                  for h in (2, 3, 4)])
    frame = live_window(store, "oil")
    assert list(zip(frame["ts"], frame["predicted"], frame["version"], strict=True)) == [
        (T0 + 2 * HOUR, 3.0, 1), (T0 + 3 * HOUR, 3.3, 2), (T0 + 4 * HOUR, 4.4, 2)]
    recent = live_window(store, "oil", since=150.0)
    assert recent["version"].tolist() == [2, 2]
    early = live_window(store, "oil", until=150.0)
    assert early["predicted"].tolist() == [3.0, 4.0]


def test_labelled_inputs_are_the_windows_whose_whole_forecast_came_true(store) -> None:
    log_forecast(store, 100.0, T0, [1.0, 2.0], [3.0, 4.0])  # targets T0+2h, T0+3h
    log_forecast(store, 200.0, T0 + 2 * HOUR, [3.0, 4.0], [5.0, 6.0])  # T0+4h, T0+5h
    record_actuals(store, "oil", [{"ts": T0 + h * HOUR, "column": "OT", "value": 10.0 + h}
                                  for h in (2, 3, 4)])  # T0+5h has not arrived
    found = labelled_inputs(store, "oil")
    assert len(found) == 1
    item = found[0]
    assert item["window"] == [[1.0], [2.0]] and item["columns"] == ["OT"]
    assert item["target"] == [[12.0], [13.0]] and item["outputs"] == ["OT"]
    assert item["version"] == 1 and item["received_at"] == 100.0
    record_actuals(store, "oil", [{"ts": T0 + 5 * HOUR, "column": "OT", "value": 15.0}])
    assert [i["received_at"] for i in labelled_inputs(store, "oil")] == [100.0, 200.0]
    assert [i["received_at"] for i in labelled_inputs(store, "oil", since=150.0)] == [200.0]


def test_a_detect_request_carries_its_own_actuals(store) -> None:
    stamps = [iso(T0 + i * HOUR) for i in range(4)]
    body = {"series": {"OT": [1.0, 2.0, 3.0, 9.0]}, "timestamps": stamps}
    answer = {"model": "oil", "version": 3, "horizon": 2, "outputs": ["OT"], "threshold": 4.0,
              "scores": {"OT": [0.1, 6.0]}, "forecast": {"OT": [3.1, 4.0]},
              "scale": {"OT": 1.0}, "alarms": {"OT": [1]}, "anomalous": True}
    PredictionLogTable(store).append([dict(
        model="oil", version=3, endpoint="detect", received_at=5.0, latency_ms=1.0,
        status=200, request=json.dumps(body), response=json.dumps(answer))])
    frame = live_window(store, "oil")
    assert frame["actual"].tolist() == [3.0, 9.0] and frame["predicted"].tolist() == [3.1, 4.0]
    (item,) = labelled_inputs(store, "oil")
    assert item["window"] == [[1.0], [2.0]] and item["target"] == [[3.0], [9.0]]


def test_actuals_that_cannot_be_read_store_nothing(store) -> None:
    with pytest.raises(LabelError, match="actual 1"):
        record_actuals(store, "oil", [{"ts": T0, "column": "OT", "value": 1.0},
                                      {"ts": "not a time", "column": "OT", "value": 1.0}])
    with pytest.raises(LabelError, match="finite"):
        record_actuals(store, "oil", [{"ts": T0, "column": "OT", "value": float("nan")}])
    log_forecast(store, 1.0, T0 - 2 * HOUR, [1.0, 2.0], [3.0])  # forecast for T0
    assert live_window(store, "oil").empty


def test_labels_are_versioned_and_the_latest_counts(any_store) -> None:
    store = any_store
    task = add_task(store, model="oil", kind="alarm", start=iso(T0), end=T0 + 3 * HOUR,
                    column="OT", score=5.0, key="alarm:1")
    assert add_task(store, model="oil", kind="alarm", start=T0, end=T0, key="alarm:1") == task
    other = add_task(store, model="gas", kind="drift", start=T0, end=T0 + HOUR)
    assert get_task(store, task)["status"] == "open"
    assert [t["id"] for t in tasks(store, status="open")] == [task, other]
    before = time.time()
    first = add_label(store, task, "anomaly", author="ana")
    second = add_label(store, task, "normal", author="bo", reason="planned shutdown",
                       regions=[{"start": T0 + HOUR, "end": iso(T0 + 2 * HOUR),
                                 "label": "anomaly"}])
    assert (first["version"], second["version"]) == (1, 2)
    history = label_history(store, task)
    assert [(h["version"], h["label"], h["author"]) for h in history] == [
        (1, "anomaly", "ana"), (2, "normal", "bo")]
    current = get_task(store, task)
    assert current["status"] == "labelled" and current["label"]["version"] == 2
    assert current["label"]["regions"] == [{"start": T0 + HOUR, "end": T0 + 2 * HOUR,
                                            "label": "anomaly"}]
    assert [t["id"] for t in tasks(store, status="open")] == [other]
    assert [t["id"] for t in tasks(store, status="labelled", model="oil")] == [task]
    assert count_labels(store) == 2 and count_labels(store, model="gas") == 0
    assert count_labels(store, since=before) == 2
    assert count_labels(store, since=time.time() + 60) == 0
    spans = [(s["start"], s["end"], s["label"]) for s in label_intervals(store, "oil")]
    assert spans == [(T0, T0 + 3 * HOUR, "normal"), (T0 + HOUR, T0 + 2 * HOUR, "anomaly")]


def test_bad_labels_and_tasks_are_refused(store) -> None:
    with pytest.raises(LabelError, match="no label task 99"):
        add_label(store, 99, "anomaly")
    with pytest.raises(LabelError, match="unknown task kind"):
        add_task(store, model="oil", kind="guess", start=T0, end=T0)
    with pytest.raises(LabelError, match="before its start"):
        add_task(store, model="oil", kind="manual", start=T0 + 1, end=T0)
    task = add_task(store, model="oil", kind="manual", start=T0, end=T0 + HOUR)
    with pytest.raises(LabelError, match="1 to 64 characters"):
        add_label(store, task, "  ")
    with pytest.raises(LabelError, match="region 0"):
        add_label(store, task, "anomaly", regions=[{"end": T0}])
    assert label_history(store, task) == [] and count_labels(store) == 0


def test_window_columns_come_from_the_request_or_the_signature(store) -> None:
    from amml.ops.models.forecaster import Forecaster
    from amml.store.model_registry import ModelRegistry

    body = {"window": [1.0, 2.0], "timestamps": [iso(T0), iso(T0 + HOUR)]}  # no columns
    answer = {"model": "oil", "version": 1, "horizon": 1, "outputs": ["OT"],
              "forecast": {"OT": [3.0]}, "timestamps": [iso(T0 + 2 * HOUR)]}
    PredictionLogTable(store).append([dict(
        model="oil", version=1, endpoint="forecast", received_at=1.0, latency_ms=1.0,
        status=200, request=json.dumps(body), response=json.dumps(answer))])
    record_actuals(store, "oil", [{"ts": T0 + 2 * HOUR, "column": "OT", "value": 3.5}])
    assert labelled_inputs(store, "oil") == []  # which column the values were: unknown
    assert live_window(store, "oil")["actual"].tolist() == [3.5]  # the forecast still is
    ModelRegistry(store).register("oil", Forecaster("naive", 2, 1, columns=["OT"],
                                                    outputs=["OT"]),
                                  signature={"columns": ["OT"], "outputs": ["OT"],
                                             "lookback": 2, "horizon": 1, "freq": "1h"})
    (item,) = labelled_inputs(store, "oil")
    assert item["columns"] == ["OT"] and item["window"] == [[1.0], [2.0]]
