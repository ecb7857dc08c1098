"""``amml monitor``: a long-running service that scores drift on what a model served.

Every ``interval`` seconds it reads the model's new rows from the prediction log (and, with
``mqtt_url``, rows of the model's columns arriving live on MQTT: each new row completes a
window, which the monitor forecasts itself and whose next row is the actual), feeds them to
the :class:`~amml.monitor.pipeline.DriftPipeline`, and for every observation

* writes each detector's score to ``drift_scores`` (the timeline of ``amml drift report``),
* sets the Prometheus gauges ``amml_drift_score{model,detector}`` and
  ``amml_drift_threshold``, counts ``amml_drift_events_total`` and records
  ``amml_drift_last_point_seconds`` (the drift point of the last event), served on
  ``metrics_port``,
* and for each event writes a ``drift_events`` row and POSTs its JSON to ``webhook``
  (failures are logged, never fatal).

The model and scaler are those of the version the log names first; a row of a later version
starts nothing new (the reference stays the first version's: drift is measured against what
the model was fitted for).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml.monitor.logged import read_logged
from amml.monitor.pipeline import DETECTORS, DriftPipeline, Scored
from amml.registry import ModelRegistry, model_scaler, model_shape, scaled_forecast
from amml.store import Store
from amml.store.drift_events import DriftRecords

log = logging.getLogger("amml.monitor")


@dataclass
class MonitorConfig:
    model: str
    reference: int = 200
    window: int = 50
    detectors: list[str] = field(default_factory=lambda: list(DETECTORS))
    interval: float = 1.0
    webhook: str | None = None
    metrics_port: int | None = None
    mqtt_url: str | None = None
    mqtt_topic: str | None = None


class Gauges:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        r = self.registry
        self.score = Gauge("amml_drift_score", "Last drift score (alarm above the threshold)",
                           ["model", "detector"], registry=r)
        self.threshold = Gauge("amml_drift_threshold", "Score that raises an alarm",
                               ["model", "detector"], registry=r)
        self.events = Counter("amml_drift_events", "Drift events raised",
                              ["model", "detector"], registry=r)
        self.point = Gauge("amml_drift_last_point_seconds", "Drift point of the last event "
                           "(epoch seconds)", ["model", "detector"], registry=r)
        self.observations = Counter("amml_drift_observations", "Forecasts scored",
                                    ["model"], registry=r)

    def serve(self, port: int) -> Any:
        from prometheus_client import start_http_server

        return start_http_server(port, addr="127.0.0.1", registry=self.registry)


class MonitorService:
    def __init__(self, store: Store, config: MonitorConfig) -> None:
        self.store, self.config = store, config
        self.records = DriftRecords(store)
        self.gauges = Gauges()
        self.registry = ModelRegistry(store)
        self.after_id = 0
        self.pipeline: DriftPipeline | None = None
        self.version: int | None = None
        self.events_raised = 0
        self._live: queue.Queue[dict[str, Any]] = queue.Queue()
        self._rows: list[np.ndarray] = []
        self._stop = threading.Event()
        self._mqtt: Any = None
        self._http: Any = None

    # -- the model -------------------------------------------------------------------------
    def _load(self, version: int) -> None:
        found = self.registry.get(self.config.model, version)
        model = self.registry.load(found)
        shape = model_shape(found, model)
        self.columns, self.outputs = list(shape.columns), list(shape.outputs)
        self.lookback = shape.lookback
        self.scaler = model_scaler(found, self.columns, self.outputs)
        self.model, self.version = model, version
        self.pipeline = DriftPipeline(model, self.columns, self.outputs, scaler=self.scaler,
                                      reference=self.config.reference,
                                      window=self.config.window,
                                      detectors=self.config.detectors)

    def _ensure_model(self) -> bool:
        if self.pipeline is not None:
            return True
        versions = [v.version for v in self.registry.versions(self.config.model)]
        if not versions:
            return False
        from sqlalchemy import select

        from amml.store.metadata.schema import prediction_log

        with self.store.metadata.engine.connect() as conn:
            first = conn.execute(select(prediction_log.c.version).where(
                prediction_log.c.model == self.config.model,
                prediction_log.c.endpoint == "forecast", prediction_log.c.status == 200)
                .order_by(prediction_log.c.id).limit(1)).scalar()
        self._load(int(first) if first is not None else max(versions))
        return True

    # -- one round -------------------------------------------------------------------------
    def poll_once(self) -> list[Scored]:
        """Read and score what arrived since the last round; returns what was scored."""
        if not self._ensure_model():
            return []
        assert self.pipeline is not None
        items, actuals = [], []
        if self.config.mqtt_url is None:
            logged, self.after_id = read_logged(self.store, self.config.model, self.columns,
                                                self.outputs, after_id=self.after_id)
            items = [(w.at, w.window, w.forecast) for w in logged]
            actuals = [None] * len(items)
        else:
            items, actuals = self._live_items()
        scored = self.pipeline.observe(items, actuals) if items else []
        self._publish(scored)
        return scored

    def _live_items(self) -> tuple[list, list]:
        """Windows completed by the rows that arrived on MQTT, forecast here."""
        items, actuals = [], []
        while True:
            try:
                message = self._live.get_nowait()
            except queue.Empty:
                break
            try:
                row = np.array([float(message[c]) for c in self.columns])
            except (KeyError, TypeError, ValueError):
                log.warning("amml monitor: MQTT message without the columns %s: %s",
                            self.columns, str(message)[:200])
                continue
            at = float(message.get("time", time.time())) if isinstance(
                message.get("time", 0), (int, float)) else time.time()
            self._rows.append(row)
            self._rows = self._rows[-self.lookback:]
            if len(self._rows) == self.lookback:
                window = np.stack(self._rows)
                forecast = scaled_forecast(self.model.predict_windows, self.scaler,
                                           self.columns, self.outputs, window[None])[0]
                items.append((at, window, forecast))
                actuals.append(None)  # the next window, one row on, gives it
        return items, actuals

    def _publish(self, scored: list[Scored]) -> None:
        name = self.config.model
        rows = []
        for item in scored:
            self.gauges.observations.labels(name).inc()
            for detector, (score, threshold) in item.scores.items():
                rows.append(dict(model=name, version=self.version or 0, detector=detector,
                                 at=item.at, score=score, threshold=threshold))
                self.gauges.score.labels(name, detector).set(score)
                self.gauges.threshold.labels(name, detector).set(threshold)
            for event, detected_at, drift_point in item.events:
                self.events_raised += 1
                self.records.add_event(model=name, version=self.version or 0,
                                       detector=event.detector, detected_at=detected_at,
                                       drift_point=drift_point, confidence=event.confidence,
                                       score=event.score, threshold=event.threshold,
                                       features=event.features, details=event.details)
                self.gauges.events.labels(name, event.detector).inc()
                self.gauges.point.labels(name, event.detector).set(drift_point)
                log.warning("amml monitor: %s drift in %s (%s) began at %s, confidence %.3f",
                            event.detector, name, ", ".join(event.features) or "-",
                            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(drift_point)),
                            event.confidence)
                self._post({"model": name, "version": self.version, **event.to_json(),
                            "detected_at": detected_at, "drift_point": drift_point})
        self.records.add_scores(rows)

    def _post(self, payload: dict[str, Any]) -> None:
        if not self.config.webhook:
            return
        import httpx

        try:
            httpx.post(self.config.webhook, content=json.dumps(payload, default=float),
                       headers={"Content-Type": "application/json"}, timeout=5.0)
        except httpx.HTTPError as exc:
            log.error("amml monitor: webhook %s failed: %s", self.config.webhook, exc)

    # -- the loop --------------------------------------------------------------------------
    def start_sources(self) -> None:
        if self.config.metrics_port:
            self._http = self.gauges.serve(self.config.metrics_port)
        if self.config.mqtt_url:
            self._mqtt = _subscribe(self.config.mqtt_url,
                                    self.config.mqtt_topic or f"amml/{self.config.model}",
                                    self._live)

    def run(self, rounds: int | None = None) -> None:
        """Poll until :meth:`stop` (or ``rounds`` rounds)."""
        self.start_sources()
        done = 0
        try:
            while not self._stop.is_set():
                try:
                    self.poll_once()
                except Exception as exc:  # the store blinked: keep watching
                    log.error("amml monitor: %s: %s", type(exc).__name__, exc)
                done += 1
                if rounds is not None and done >= rounds:
                    break
                self._stop.wait(self.config.interval)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._mqtt is not None:
            self._mqtt.loop_stop()
            self._mqtt.disconnect()
            self._mqtt = None
        if self._http is not None:
            server = self._http[0] if isinstance(self._http, tuple) else self._http
            server.shutdown()
            self._http = None


def _subscribe(url: str, topic: str, sink: queue.Queue) -> Any:
    """A paho-mqtt client putting each JSON message (an object) on ``sink``."""
    from urllib.parse import urlparse

    import paho.mqtt.client as mqtt

    parsed = urlparse(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        try:
            data = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(data, dict):
            sink.put(data)

    def on_connect(c: Any, _userdata: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        c.subscribe(topic)

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(parsed.hostname or "127.0.0.1", parsed.port or 1883)
    client.loop_start()
    return client
