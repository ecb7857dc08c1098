"""``amml monitor``, ``amml drift events`` and ``amml drift report`` on a store whose
prediction log the server's own writer filled, and the monitor on live MQTT rows (the real
Mosquitto)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from amml.cli.main import app
from amml.monitor.service import MonitorConfig, MonitorService
from amml.ops.models.forecaster import Forecaster
from amml.registry import ModelRegistry
from amml.store import Store, open_store
from amml.store.drift_events import DriftRecords
from amml.store.prediction_log import PredictionLogTable

LOOKBACK = 6


def register(store: Store) -> None:
    ModelRegistry(store).register(
        "oil", Forecaster("naive", LOOKBACK, 3, columns=["OT"], outputs=["OT"]),
        signature={"freq": "1h", "lookback": LOOKBACK, "horizon": 3, "columns": ["OT"],
                   "outputs": ["OT"]})


def drifting(n: int = 400, drift: int = 250) -> np.ndarray:
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, n + LOOKBACK)
    values[drift + LOOKBACK:] += 3.0
    return values


def test_monitor_command_then_events_and_report(tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    values = drifting()
    with open_store(home) as store:
        register(store)
        rows = []
        for i in range(400):
            window = values[i:i + LOOKBACK]
            rows.append(dict(model="oil", version=1, endpoint="forecast",
                             received_at=1_700_000_000.0 + 3600 * i, latency_ms=1.0,
                             status=200, request=json.dumps({"window": window.tolist()}),
                             response=json.dumps({"forecast": {"OT": [window[-1]] * 3}})))
        PredictionLogTable(store).append(rows)
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "oil", "--home", str(home), "--reference", "100",
                                 "--window", "25", "--rounds", "1", "--detector", "input-ks",
                                 "--detector", "attribution"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["drift", "events", "oil", "--home", str(home), "--json"])
    assert listed.exit_code == 0, listed.output
    events = json.loads(listed.stdout)
    assert {e["detector"] for e in events} == {"input-ks", "attribution"}
    drift_at = 1_700_000_000.0 + 3600 * (250 + 1)  # the first window ending in a high row
    for detector in ("input-ks", "attribution"):
        first = next(e for e in events if e["detector"] == detector)
        assert abs(first["drift_point"] - drift_at) <= 8 * 3600
    assert len(events) <= 4  # one drift, not an event per window
    png = tmp_path / "drift.png"
    drawn = runner.invoke(app, ["drift", "report", "oil", "--home", str(home), "--out",
                                str(png)])
    assert drawn.exit_code == 0 and f"events={len(events)}" in drawn.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(app, ["monitor", "oil", "--home", str(home), "--detector", "nope"])
    assert bad.exit_code == 2 and "unknown detector nope" in bad.output


def test_monitor_on_live_mqtt_rows(store: Store, mqtt_url: str) -> None:
    import paho.mqtt.client as mqtt

    register(store)
    topic = f"amml-test/{time.time_ns()}"
    service = MonitorService(store, MonitorConfig(
        model="oil", reference=100, window=25, mqtt_url=mqtt_url, mqtt_topic=topic,
        detectors=["input-ks", "error-adwin"]))
    service.start_sources()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    try:
        time.sleep(0.5)  # the subscription is in place
        values = drifting()
        for i, value in enumerate(values):
            publisher.publish(topic, json.dumps({"OT": float(value), "time": 1e9 + i}),
                              qos=1).wait_for_publish()
        deadline = time.monotonic() + 20
        scored = []
        while time.monotonic() < deadline and len(scored) < 300:
            scored += service.poll_once()
            time.sleep(0.1)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        service.close()
    assert len(scored) == len(values) - LOOKBACK + 1 - 100
    events = DriftRecords(store).events("oil")
    first = next(e for e in events if e["detector"] == "input-ks")
    assert abs(first["drift_point"] - (1e9 + 250 + LOOKBACK)) <= 6
    # actuals came from the next row: the naive model's errors were scored (a level shift
    # moves them for one step only, so they need not alarm)
    assert "error-adwin" in {s["detector"] for s in DriftRecords(store).scores("oil")}
