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

Which version is watched, and its reference. ``MODEL`` may be ``NAME`` (the newest version
the server has served: the prediction log's rows carry their ``version``), ``NAME@ALIAS``
(the version the alias points at, read every round) or ``NAME@VERSION`` (that one only).
The reference period is the first ``reference`` forecasts *of the watched version*: when
the served version changes (a promotion moved the alias, a server swapped to a newer
version), the monitor loads the new version and starts a new reference from its first
forecasts, so a model fitted to a new regime is not held to the old one's. Forecasts of other
versions (an old server finishing its swap) are not scored. Each (re-)reference is logged,
counted on the gauge ``amml_drift_reference_version`` and recorded in the store
(``trigger_cursors``, workflow ``monitor:NAME``, trigger ``reference``: the version, since
when, and the earlier references). Every event and score carries the version whose forecasts
raised it, and an event's details name its reference (version and time span).
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

from amml._exceptions import ConfigurationError
from amml.monitor.logged import parse_logged
from amml.monitor.pipeline import DETECTOR_DRIFT, DETECTORS, DriftPipeline, Scored
from amml.ops.detectors.fitted import FittedDetector
from amml.registry import (
    ModelRegistry,
    detector_shape,
    model_scaler,
    model_shape,
    scaled_forecast,
)
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
        self.reference = Gauge("amml_drift_reference_version", "Version whose forecasts "
                               "form the reference drift is measured against", ["model"],
                               registry=r)

    def serve(self, port: int) -> Any:
        from prometheus_client import start_http_server

        return start_http_server(port, addr="127.0.0.1", registry=self.registry)


#: The prediction log's endpoints that show a version serving: a forecaster's forecasts (and
#: residual detections), a fitted detector's scores.
SERVED_ENDPOINTS = ("forecast", "detect")

#: How many earlier (re-)references the store keeps per model.
HISTORY = 50


class MonitorService:
    def __init__(self, store: Store, config: MonitorConfig) -> None:
        self.store, self.config = store, config
        self.name, at, self.pointer = config.model.partition("@")
        if not self.name or (at and not self.pointer):
            raise ValueError(f"invalid model reference '{config.model}' (NAME, NAME@ALIAS "
                             "or NAME@VERSION)")
        self.records = DriftRecords(store)
        self.gauges = Gauges()
        self.registry = ModelRegistry(store)
        self.after_id = 0
        self.pipeline: DriftPipeline | None = None
        self.version: int | None = None
        self.events_raised = 0
        self.skipped = 0  # forecasts of a version other than the watched one
        self.references: list[dict[str, Any]] = []  # every (re-)reference, oldest first
        self._served: int | None = None  # NAME: the newest version the log shows served
        self._served_after = 0
        self._live: queue.Queue[dict[str, Any]] = queue.Queue()
        self._rows: list[np.ndarray] = []
        self.columns: list[str] = []  # the watched version's (none loaded yet)
        self._stop = threading.Event()
        self._mqtt: Any = None
        self._http: Any = None

    # -- the model -------------------------------------------------------------------------
    def _load(self, version: int) -> None:
        found = self.registry.get(self.name, version)
        model = self.registry.load(found)
        detectors = list(self.config.detectors)
        # nothing is changed until every check passed: a refused version leaves the monitor
        # as it was
        if isinstance(model, FittedDetector):
            shape, endpoint, scaler = detector_shape(found, model), "detect", None
            skipped = [d for d in detectors if d not in DETECTOR_DRIFT]
            detectors = [d for d in detectors if d in DETECTOR_DRIFT]
            if not detectors:
                raise ConfigurationError(
                    f"{found.ref} is an anomaly detector ({model.name}): of the drift "
                    f"detectors asked for ({', '.join(skipped)}) none applies; use "
                    f"{', '.join(DETECTOR_DRIFT)}")
            if skipped:
                log.info("amml monitor: %s is an anomaly detector (%s): %s do not apply (no "
                         "attributions, no actual values)", found.ref, model.name,
                         ", ".join(skipped))
        else:
            shape, endpoint = model_shape(found, model), "forecast"
            scaler = model_scaler(found, list(shape.columns), list(shape.outputs))
        pipeline = DriftPipeline(model, list(shape.columns), list(shape.outputs), scaler=scaler,
                                 reference=self.config.reference, window=self.config.window,
                                 detectors=detectors)
        if list(shape.columns) != self.columns:
            self._rows = []  # live rows held the previous version's columns
        self.columns, self.outputs = list(shape.columns), list(shape.outputs)
        self.lookback, self.endpoint, self.scaler = shape.lookback, endpoint, scaler
        self.model, self.version, self.pipeline = model, version, pipeline

    def _pinned(self) -> int | None:
        """The version ``NAME@VERSION`` or ``NAME@ALIAS`` names now (None: the alias is not
        set); ``NAME`` follows the log instead (:meth:`_newest_served`)."""
        if self.pointer.isdigit():
            return int(self.pointer)
        return self.registry.alias_version(self.name, self.pointer)

    def _newest_served(self) -> int | None:
        """The newest version the prediction log shows served a forecast (one query over
        the rows logged since the last look)."""
        from sqlalchemy import func, select

        from amml.store.metadata.schema import prediction_log

        with self.store.metadata.engine.connect() as conn:
            last, newest = conn.execute(
                select(func.max(prediction_log.c.id), func.max(prediction_log.c.version))
                .where(prediction_log.c.model == self.name,
                       prediction_log.c.id > self._served_after,
                       prediction_log.c.endpoint.in_(SERVED_ENDPOINTS),
                       prediction_log.c.status == 200)).one()
        if last is not None:
            self._served_after = int(last)
            self._served = max(int(newest), self._served or 0)
        return self._served

    def _reference_on(self, version: int, why: str) -> None:
        """Watch ``version`` from now on: load it, start a new reference, record it."""
        previous = self.version
        self._load(version)
        entry = {"version": version, "previous": previous, "at": time.time(), "why": why}
        self.references.append(entry)
        self.gauges.reference.labels(self.name).set(version)
        if previous is not None:
            log.warning("amml monitor: %s: version %d serves now (was %d, %s): drift is "
                        "measured against a new reference, its first %d forecasts",
                        self.name, version, previous, why, self.config.reference)
        self._record(entry)

    def _record(self, entry: dict[str, Any]) -> None:
        from amml.store.operations import OperationsRecords

        records = OperationsRecords(self.store)
        key = f"monitor:{self.name}"[:200]
        before = records.cursor(key, "reference") or {}
        history = [*before.get("history", []), *([before] if before.get("version") else [])]
        history = [{k: v for k, v in h.items() if k != "history"} for h in history]
        records.set_cursor(key, "reference", {**entry, "reference": self.config.reference,
                                               "history": history[-HISTORY:]})

    # -- one round -------------------------------------------------------------------------
    def poll_once(self) -> list[Scored]:
        """Read and score what arrived since the last round; returns what was scored."""
        if self.config.mqtt_url is None:
            return self._poll_log()
        if self.pointer:
            wanted = self._pinned()
        else:
            wanted = self._newest_served()
            if wanted is None and self.version is None:  # nothing served yet: the newest
                wanted = self.registry.latest_version(self.name)
        if wanted is not None and wanted != self.version:
            self._reference_on(int(wanted), f"{self._what()} is version {wanted}")
        if self.pipeline is None:
            return []
        items, actuals = self._live_items()
        return self._score(items, actuals)

    def _what(self) -> str:
        return f"{self.name}@{self.pointer}" if self.pointer else "the newest version served"

    def _poll_log(self) -> list[Scored]:
        """Score the forecasts logged since the last round, each with the version that made
        it; a newer served version (``NAME``) or a moved alias starts a new reference."""
        from sqlalchemy import select

        from amml.store.metadata.schema import prediction_log

        if self.pointer:
            wanted = self._pinned()
            if wanted is None:
                return []  # the alias is not set yet
            if wanted != self.version:
                self._reference_on(int(wanted), f"{self._what()} is version {wanted}")
        query = (select(prediction_log).where(prediction_log.c.model == self.name,
                                              prediction_log.c.id > self.after_id)
                 .order_by(prediction_log.c.id).limit(5000))
        with self.store.metadata.engine.connect() as conn:
            rows = conn.execute(query).all()
        scored: list[Scored] = []
        items: list[tuple[float, np.ndarray, np.ndarray]] = []
        for row in rows:
            self.after_id = row.id
            if row.endpoint not in SERVED_ENDPOINTS or row.status != 200:
                continue
            version = int(row.version)
            if not self.pointer and (self._served is None or version > self._served):
                scored += self._score(items)  # what the previous version served
                items = []
                self._reference_on(version, f"the log's row {row.id} was served by it")
                self._served = version
            if version != self.version:
                self.skipped += 1
                continue
            if row.endpoint != self.endpoint:
                continue  # a forecaster's /detect: its forecasts are watched on /forecast
            for window, forecast in parse_logged(row.request, row.response, self.columns,
                                                 self.outputs):
                items.append((row.received_at, window, forecast))
        return scored + self._score(items)

    def _score(self, items: list, actuals: list | None = None) -> list[Scored]:
        if not items or self.pipeline is None:
            return []
        scored = self.pipeline.observe(items, actuals or [None] * len(items))
        self._publish(scored)
        return scored

    def _reference_span(self) -> dict[str, Any]:
        assert self.pipeline is not None
        times = [at for at, *_ in self.pipeline._reference]
        return {"version": self.version, "from": min(times, default=None),
                "to": max(times, default=None), "size": len(times)}

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
                if self.endpoint == "detect":  # the score the server would answer
                    forecast = self.model.score_windows(window[None]).reshape(1, 1)
                else:
                    forecast = scaled_forecast(self.model.predict_windows, self.scaler,
                                               self.columns, self.outputs, window[None])[0]
                items.append((at, window, forecast))
                actuals.append(None)  # the next window, one row on, gives it
        return items, actuals

    def _publish(self, scored: list[Scored]) -> None:
        name = self.name
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
                                       features=event.features,
                                       details={**event.details,
                                                "reference": self._reference_span()})
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
                                    self.config.mqtt_topic or f"amml/{self.name}",
                                    self._live)

    def run(self, rounds: int | None = None) -> None:
        """Poll until :meth:`stop` (or ``rounds`` rounds)."""
        self.start_sources()
        done = 0
        try:
            while not self._stop.is_set():
                try:
                    self.poll_once()
                except ConfigurationError:
                    raise  # no later round can watch what was asked for
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
