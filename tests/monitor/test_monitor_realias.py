"""The monitor follows the served version: after a swap it measures drift against the new
version's own first forecasts, not the old version's reference.

A real store, two registered versions, and the prediction log written by the server's own
writer: version 1 serves a level-20 series (its reference) that then drifts to level 26
with a wider spread (events, of version 1); the champion alias moves to version 2 (a model
fitted to the new regime), which serves more of the new regime, while the old server
finishes with a few stale answers of version 1. The monitor must start a new reference on
version 2, raise no event against the old reference, skip the stale answers, and record the
switch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from amml.cli.main import app
from amml.monitor.service import MonitorConfig, MonitorService
from amml.ops.models.forecaster import Forecaster
from amml.registry import ModelRegistry
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.operations import OperationsRecords
from amml.store.prediction_log import PredictionLogTable

LOOKBACK, HORIZON = 6, 3
REFERENCE, WINDOW = 100, 25
T0 = 1_700_000_000.0
DETECTORS = ["input-ks", "input-mmd", "prediction-ks", "error-adwin"]


def register(store: Store) -> ModelRegistry:
    registry = ModelRegistry(store)
    signature = {"freq": "1h", "lookback": LOOKBACK, "horizon": HORIZON, "columns": ["OT"],
                 "outputs": ["OT"]}
    for _ in (1, 2):
        registry.register("oil", Forecaster("naive", LOOKBACK, HORIZON, columns=["OT"],
                                            outputs=["OT"]), signature=signature)
    registry.set_alias("oil", "champion", 1, actor="test", reason="first")
    return registry


def log_rows(store: Store, values: np.ndarray, versions: list[int], start: int) -> None:
    """One forecast request per sliding window of ``values``, the i-th answered by
    ``versions[i]`` (a naive forecast: the last value repeated)."""
    rows = []
    for i, version in enumerate(versions):
        window = values[i:i + LOOKBACK]
        rows.append(dict(model="oil", version=version, endpoint="forecast",
                         received_at=T0 + 3600 * (start + i), latency_ms=1.0, status=200,
                         request=json.dumps({"window": window.tolist()}),
                         response=json.dumps({"forecast": {"OT": [window[-1]] * HORIZON}})))
    PredictionLogTable(store).append(rows)


@pytest.mark.parametrize("watched", ["oil@champion", "oil"])
def test_a_new_version_is_held_to_its_own_reference(store: Store, watched: str) -> None:
    registry = register(store)
    rng = np.random.default_rng(11)
    before = np.concatenate([rng.normal(20.0, 1.0, LOOKBACK - 1 + 150),
                             rng.normal(26.0, 3.0, 150)])  # drift at window 150
    log_rows(store, before, [1] * 300, start=0)
    service = MonitorService(store, MonitorConfig(model=watched, reference=REFERENCE,
                                                  window=WINDOW, detectors=DETECTORS))
    first = service.poll_once()
    assert len(first) == 300 - REFERENCE
    old = DriftRecords(store).events("oil")
    assert old and {e["version"] for e in old} == {1}  # the drift, seen by version 1
    assert all(e["detected_at"] >= T0 + 3600 * 150 for e in old)
    assert old[0]["details"]["reference"] == {"version": 1, "from": T0, "to": T0 + 3600 * 99,
                                              "size": REFERENCE}

    swap = 300
    registry.set_alias("oil", "champion", 2, actor="test", reason="promoted")
    after = rng.normal(26.0, 3.0, LOOKBACK - 1 + 320)  # the new regime goes on
    versions = [2] * 320
    for i in range(5, 45, 2):  # the old server's last answers, interleaved
        versions[i] = 1
    log_rows(store, after, versions, start=swap)
    second = service.poll_once()

    events = DriftRecords(store).events("oil")
    assert events == old  # nothing raised against the old reference after the swap
    scores = [s for s in DriftRecords(store).scores("oil") if s["at"] >= T0 + 3600 * swap]
    assert scores and {s["version"] for s in scores} == {2}
    last = {s["detector"]: s for s in scores}
    calm = [d for d in ("input-ks", "input-mmd", "prediction-ks")
            if last[d]["score"] <= last[d]["threshold"]]
    assert calm == ["input-ks", "input-mmd", "prediction-ks"]  # no drift "on" any more
    assert service.version == 2
    assert [r["version"] for r in service.references] == [1, 2]
    assert service.skipped == 20  # version 1's stale answers are not scored
    assert len(second) == 300 - REFERENCE  # version 2's own first 100 are its reference
    recorded = OperationsRecords(store).cursor("monitor:oil", "reference")
    assert recorded["version"] == 2 and recorded["previous"] == 1
    assert [h["version"] for h in recorded["history"]] == [1]
    shown = CliRunner().invoke(app, ["drift", "references", "oil", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [(r["version"], r["previous"]) for r in json.loads(shown.stdout)] == [(2, 1),
                                                                                 (1, None)]


def test_the_new_reference_still_sees_drift_of_the_new_version(store: Store) -> None:
    """Re-referencing does not blind the monitor: version 2's regime drifting again raises
    events of version 2."""
    registry = register(store)
    rng = np.random.default_rng(5)
    log_rows(store, rng.normal(20.0, 1.0, LOOKBACK - 1 + 150), [1] * 150, start=0)
    service = MonitorService(store, MonitorConfig(model="oil@champion", reference=REFERENCE,
                                                  window=WINDOW, detectors=DETECTORS))
    service.poll_once()
    registry.set_alias("oil", "champion", 2, actor="test", reason="promoted")
    values = np.concatenate([rng.normal(26.0, 3.0, LOOKBACK - 1 + 150),
                             rng.normal(40.0, 3.0, 100)])
    log_rows(store, values, [2] * 250, start=150)
    service.poll_once()
    events = DriftRecords(store).events("oil")
    assert events and {e["version"] for e in events} == {2}
    assert min(e["detected_at"] for e in events) >= T0 + 3600 * 300
    assert events[0]["details"]["reference"]["version"] == 2


def test_an_unset_alias_waits_and_a_bad_reference_is_refused(store: Store) -> None:
    register(store)
    log_rows(store, np.arange(LOOKBACK + 10, dtype=float), [1] * 10, start=0)
    service = MonitorService(store, MonitorConfig(model="oil@canary", reference=REFERENCE,
                                                  window=WINDOW, detectors=DETECTORS))
    assert service.poll_once() == [] and service.version is None
    with pytest.raises(ValueError, match="invalid model reference"):
        MonitorService(store, MonitorConfig(model="oil@"))


@pytest.mark.parametrize("watched", ["oil", "oil@champion"])
def test_live_mqtt_rows_are_forecast_by_the_version_now_served(store: Store, mqtt_url: str,
                                                               watched: str) -> None:
    """On MQTT the monitor forecasts each window itself: with the version the log shows
    served last (``NAME``) or the alias names (``NAME@ALIAS``), re-referenced on a swap."""
    import time

    import paho.mqtt.client as mqtt

    registry = register(store)
    log_rows(store, np.zeros(LOOKBACK), [1], start=0)  # version 1 serves
    topic = f"amml-test/{time.time_ns()}"
    service = MonitorService(store, MonitorConfig(
        model=watched, reference=REFERENCE, window=WINDOW, mqtt_url=mqtt_url,
        mqtt_topic=topic, detectors=["input-ks", "prediction-ks"]))
    service.start_sources()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    rng = np.random.default_rng(2)
    sent = 0

    def feed(values: np.ndarray, expect: int) -> list:
        nonlocal sent
        for value in values:
            publisher.publish(topic, json.dumps({"OT": float(value), "time": T0 + sent}),
                              qos=1).wait_for_publish()
            sent += 1
        scored: list = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(scored) < expect:
            scored += service.poll_once()
            time.sleep(0.05)
        return scored

    try:
        time.sleep(0.5)  # the subscription is in place
        before = np.concatenate([rng.normal(20.0, 1.0, LOOKBACK - 1 + 150),
                                 rng.normal(26.0, 3.0, 100)])
        assert len(feed(before, 250 - REFERENCE)) == 250 - REFERENCE
        assert service.version == 1 and DriftRecords(store).events("oil")
        if watched == "oil":
            log_rows(store, np.zeros(LOOKBACK), [2], start=400)  # the server swapped
        else:
            registry.set_alias("oil", "champion", 2, actor="test", reason="promoted")
        after = feed(rng.normal(26.0, 3.0, 250), 250 - REFERENCE)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        service.close()
    assert len(after) == 250 - REFERENCE and service.version == 2
    assert [r["version"] for r in service.references] == [1, 2]
    assert {e["version"] for e in DriftRecords(store).events("oil")} == {1}
    late = [s for s in DriftRecords(store).scores("oil") if s["at"] >= T0 + 250 + REFERENCE]
    assert late and {s["version"] for s in late} == {2}
    assert all(s["score"] <= s["threshold"] for s in late[-2:])  # no drift "on" any more
