"""The monitor service on a real prediction log: the test application (real store, keys and
request log) serves a naive model a sliding window along a series whose level and spread
change; the service reads the log, finds the drift near where it began, records the events
and scores, sets its gauges and posts each event to a webhook (a real HTTP server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
from prometheus_client import generate_latest
from sqlalchemy import func, select

from amml.monitor.service import MonitorConfig, MonitorService
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.metadata.schema import prediction_log
from tests.serve.conftest import HORIZON, LOOKBACK, serving, wait_until

BATCH, BATCHES, DRIFT_BATCH = 50, 12, 8  # windows 400.. see the drifted rows


def series() -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.normal(20.0, 1.0, LOOKBACK - 1 + BATCH * BATCHES)
    values[LOOKBACK - 1 + BATCH * DRIFT_BATCH:] = (
        rng.normal(26.0, 3.0, BATCH * (BATCHES - DRIFT_BATCH)))
    return values


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_monitor_reads_the_prediction_log_and_records_drift(store: Store,
                                                            tmp_path: Path) -> None:
    values = series()
    times = []
    with serving(store, tmp_path) as app:
        for b in range(BATCHES):
            windows = [values[i:i + LOOKBACK].tolist()
                       for i in range(b * BATCH, (b + 1) * BATCH)]
            r = app.post("/v1/models/oil/forecast", json={"windows": windows})
            assert r.status_code == 200
        app.post("/v1/models/oil/forecast", json={"window": [1.0] * 3})  # a 422: skipped
        # a residual detection: its windows are lookback + horizon rows, not a forecast's
        detect = app.post("/v1/models/oil/detect",
                          json={"windows": [values[:LOOKBACK + HORIZON].tolist()] * 5})
        assert detect.status_code == 200
        # one window alone: its answer's forecast would read as the window's own
        assert app.post("/v1/models/oil/detect", json={
            "window": values[:LOOKBACK + HORIZON].tolist()}).status_code == 200

        def logged() -> int:
            with store.metadata.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(prediction_log)).scalar()

        wait_until(lambda: logged() == BATCHES + 3)
    with store.metadata.engine.connect() as conn:
        times = [row.received_at for row in conn.execute(
            select(prediction_log).order_by(prediction_log.c.id))]

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = MonitorConfig(model="oil", reference=200, window=50,
                               webhook=f"http://127.0.0.1:{server.server_port}/hook")
        service = MonitorService(store, config)
        scored = service.poll_once()
        assert service.poll_once() == []  # nothing new: nothing scored twice
    finally:
        server.shutdown()
    assert len(scored) == BATCH * BATCHES - 200
    events = DriftRecords(store).events("oil")
    by_detector = {}
    for event in events:
        by_detector.setdefault(event["detector"], event)
    for name in ("input-ks", "input-wasserstein", "input-mmd", "prediction-ks", "attribution",
                 "error-adwin"):
        first = by_detector[name]
        # the drift began in batch DRIFT_BATCH: its point is that request's time (give or
        # take the request before, whose last windows are a few rows from it)
        assert times[DRIFT_BATCH - 1] <= first["drift_point"] <= times[DRIFT_BATCH], name
        assert first["detected_at"] >= times[DRIFT_BATCH] and first["confidence"] > 0.9
        assert first["version"] == 1
    assert by_detector["attribution"]["features"][0] == "OT:lags 1-1"  # naive: the last row
    assert not any(e["detected_at"] < times[DRIFT_BATCH - 1] for e in events)
    wait_until(lambda: len(Hook.received) == len(events))
    assert {h["detector"] for h in Hook.received} == {e["detector"] for e in events}
    assert all(h["model"] == "oil" and "drift_point" in h for h in Hook.received)
    scores = DriftRecords(store).scores("oil")
    assert {s["detector"] for s in scores} >= {"attribution", "input-ks", "error-adwin"}
    metrics = generate_latest(service.gauges.registry).decode()
    assert 'amml_drift_events_total{detector="attribution",model="oil"}' in metrics
    assert 'amml_drift_observations_total{model="oil"} 400.0' in metrics
