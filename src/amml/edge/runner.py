"""``amml-edge``: run an assigned model on a device, between an MQTT broker and AMML's server.

Imports only the standard library, numpy, onnxruntime and paho-mqtt (``amml[edge]``); no
PyTorch, no pandas, nothing else of AMML but the pure-Python signature check
(:mod:`amml.edge.ed25519`). ``tests/edge/test_runner_imports.py`` proves it.

What it does:

* asks the server for its assignment with its device key (``GET /v1/edge/assignment``),
  downloads the model, checks the manifest's Ed25519 signature against the public keys it was
  given (``--trust-key``) and the model's sha256 against the manifest, then loads it;
* subscribes to ``--topic`` and keeps the rolling window of the last ``lookback`` rows (a
  message is ``{"values": {"col": 1.0, ...}}``, ``{"values": [1.0, ...]}`` in column order, or
  a bare number for one column);
* once the window is full, publishes each forecast (original units) with the anomaly score of
  the newest row against the previous forecast to ``--out``; a detector's graph (manifest
  ``task: detect``, :mod:`amml.edge.detector_export`) publishes its calibrated anomaly score
  of the newest row instead (0.5 at the detector's frozen threshold);
* batches windows that arrive together: MQTT's thread only appends rows and queues the full
  windows; a worker runs everything queued since its last call as one batch (``--max-batch``),
  so a burst costs one session call, not one per row; a message may carry several rows
  (``{"rows": [[...], ...]}``);
* publishes health to ``--out/health`` (retained; ``offline`` as its last will) and reports it
  to the server (``POST /v1/edge/report``) every ``--report-every`` seconds;
* polls the assignment every ``--poll`` seconds and swaps the model in place when it changes
  (the window is kept when the columns are the same);
* survives a broker restart: paho reconnects, the subscription is renewed on each connect,
  the window lives in this process.

Memory stays bounded: the window is a deque of ``lookback`` rows, the queue of windows waiting
for the worker holds at most 64 (or ``4 x max_batch``; the oldest are dropped and counted),
latencies a deque of 256, and paho's outgoing queue is capped. ONNX Runtime runs on one thread
without its memory arena or memory-pattern planning (buffers go back to the allocator after
each call), and after each model load the clean pages of the shared libraries that importing
and session creation touched once are released (:mod:`amml.edge.memory`; ``--keep-pages``
keeps them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml.edge.ed25519 import verify
from amml.edge.memory import (
    one_heap,
    release_library_pages,
    return_free_heap,
    rss_mb,
    status_mb,
)

log = logging.getLogger("amml.edge")
#: paho's outgoing queue, messages.
MAX_QUEUED = 1000
#: Windows run in one session call at most (``--max-batch``). A batch's working memory grows
#: with it: an LSTM over 64 windows of 336 x 7 peaked at ~240 MB (its gate inputs for every
#: step at once), over 16 at ~94 MB (VmHWM; steady state after it: 46 MB).
MAX_BATCH = 16
#: Windows waiting for the worker at most (or 4 x ``--max-batch``); beyond, the oldest go.
QUEUED_WINDOWS = 64


class EdgeError(Exception):
    """The device cannot go on with what it got (bad signature, unreachable server...)."""


@dataclass
class LoadedModel:
    """One verified model, ready to run."""

    session: Any
    manifest: dict[str, Any]
    digest: str
    offset: np.ndarray
    scale: np.ndarray
    out_offset: np.ndarray
    out_scale: np.ndarray
    residual_scale: np.ndarray

    @property
    def label(self) -> str:
        m = self.manifest
        return f"{m['model']}@{m['version']}/{m['format']}"

    @property
    def lookback(self) -> int:
        return int(self.manifest["lookback"])

    @property
    def columns(self) -> list[str]:
        return list(self.manifest["columns"])

    @property
    def outputs(self) -> list[str]:
        return list(self.manifest["outputs"])

    @property
    def task(self) -> str:
        """``forecast`` (a forecaster's graph) or ``detect`` (a detector's: scores out)."""
        return str(self.manifest.get("task", "forecast"))

    def run(self, windows: np.ndarray) -> np.ndarray:
        """``(N, lookback, columns)`` original units, one session call: forecasts
        ``(N, horizon, outputs)`` in original units, or a detector's scores ``(N,)``."""
        x = ((windows - self.offset) / self.scale).astype(np.float32)
        out = self.session.run(None, {"windows": x})[0]
        if self.task == "detect":
            return out
        return out * self.out_scale + self.out_offset

    def forecast(self, window: np.ndarray) -> np.ndarray:
        """``(lookback, columns)`` original units -> ``(horizon, outputs)`` original units."""
        return self.run(window[None])[0]


def load_verified(model_bytes: bytes, manifest_text: str, signature_hex: str,
                  trusted: list[bytes], threads: int = 1) -> LoadedModel:
    """Check the signature on the manifest and the model's sha256, then open a session."""
    message = manifest_text.encode()
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise EdgeError("the model's signature is not hex") from None
    if not any(verify(key, message, signature) for key in trusted):
        raise EdgeError("the model's manifest is not signed by a trusted key: refusing it")
    manifest = json.loads(manifest_text)
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.get("sha256"):
        raise EdgeError(f"the model's bytes hash to {digest[:12]}, the signed manifest says "
                        f"{str(manifest.get('sha256'))[:12]}: refusing it")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # small models, one window or a few at a time: no arena kept between calls, no
    # pre-planned memory pattern (each held a few MB more, measured in benchmarks/edge.py)
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    scaler = manifest.get("scaler") or {}

    def params(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        offset = np.array([scaler.get(c, {}).get("offset", 0.0) for c in names])
        scale = np.array([scaler.get(c, {}).get("scale", 1.0) or 1.0 for c in names])
        return offset, scale

    offset, scale = params(manifest["columns"])
    out_offset, out_scale = params(manifest["outputs"])
    residual = np.array(manifest.get("residual_scale") or [1.0] * len(manifest["outputs"]))
    return LoadedModel(session, manifest, digest, offset, scale, out_offset, out_scale,
                       residual)


@dataclass
class Settings:
    server: str
    token: str
    trusted: list[bytes]
    broker: str = "127.0.0.1"
    port: int = 1883
    topic: str = "amml/edge/in"
    out: str = "amml/edge/out"
    poll: float = 5.0
    report_every: float = 10.0
    client_id: str = ""
    threads: int = 1
    max_batch: int = MAX_BATCH
    release_pages: bool = True


@dataclass
class Counters:
    messages: int = 0
    bad_messages: int = 0
    forecasts: int = 0
    connects: int = 0
    disconnects: int = 0
    swaps: int = 0
    refused: int = 0
    batches: int = 0
    largest_batch: int = 0
    dropped: int = 0
    released_mb: float = 0.0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=256))


class Runner:
    """The device loop: assignment polling in the calling thread, MQTT in paho's thread
    (rows into the window, full windows onto the queue), the model in a worker thread (what
    is queued, as one batch)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self.window: deque = deque(maxlen=1)
        self.previous: np.ndarray | None = None  # the last forecast, for the next score
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        # (model, window, newest row) waiting for the worker, oldest first
        self.pending: deque = deque(maxlen=max(QUEUED_WINDOWS, 4 * settings.max_batch))
        self.counters = Counters()
        self.stopping = threading.Event()
        self.client: Any = None
        self.worker: threading.Thread | None = None
        self.assigned_digest: str | None = None

    # -- the server ------------------------------------------------------------------------
    def _request(self, path: str, body: dict[str, Any] | None = None) -> bytes:
        url = self.settings.server.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if data is None
                                         else "POST")
        request.add_header("Authorization", f"Bearer {self.settings.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise EdgeError(f"{path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise EdgeError(f"{path}: server unreachable: {exc}") from None

    def check_assignment(self) -> bool:
        """Fetch the assignment; load and swap in its model when it changed. True: swapped."""
        assignment = json.loads(self._request("/v1/edge/assignment"))
        digest = assignment["digest"]
        if digest == self.assigned_digest:
            return False
        data = self._request(f"/v1/edge/artifacts/{digest}")
        try:
            model = load_verified(data, assignment["manifest"], assignment["signature"],
                                  self.settings.trusted, self.settings.threads)
        except EdgeError:
            self.counters.refused += 1
            raise
        self.assigned_digest = digest
        del data  # the session holds its own copy of the graph
        self.install(model)
        return True

    def install(self, model: LoadedModel) -> None:
        """Run ``model`` from now on (the window is kept when the columns are the same);
        then release the library pages loading touched (unless ``--keep-pages``)."""
        if self.settings.release_pages:
            model.run(np.zeros((1, model.lookback, len(model.columns))))  # warm the session
        with self.lock:
            old = self.model
            keep = old is not None and old.columns == model.columns
            rows = list(self.window) if keep else []
            self.window = deque(rows[-model.lookback:], maxlen=model.lookback)
            self.model, self.previous = model, None
            self.pending.clear()
            self.counters.swaps += 1
        del old
        if self.settings.release_pages:
            self.counters.released_mb += release_library_pages()
        log.info("amml-edge: running %s (window kept: %s)", model.label, keep)

    def start(self) -> None:
        """The worker thread and the MQTT connection (once there is a model)."""
        self.worker = threading.Thread(target=self.work, name="amml-edge-worker", daemon=True)
        self.worker.start()
        self.connect()

    def health(self) -> dict[str, Any]:
        c = self.counters
        lat = sorted(c.latencies_ms)
        with self.lock:
            model = self.model
            fill = len(self.window)
        return {"status": "online", "model": model.label if model else None,
                "digest": model.digest if model else None, "window": fill,
                "lookback": model.lookback if model else None, "messages": c.messages,
                "bad_messages": c.bad_messages, "forecasts": c.forecasts,
                "connects": c.connects, "disconnects": c.disconnects, "swaps": c.swaps,
                "refused": c.refused, "batches": c.batches, "largest_batch": c.largest_batch,
                "dropped": c.dropped, "rss_mb": round(rss_mb(), 2),
                "rss_anon_mb": round(status_mb().get("RssAnon", 0.0), 2),
                "released_mb": round(c.released_mb, 2),
                "latency_ms_p50": lat[len(lat) // 2] if lat else None,
                "latency_ms_p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat
                else None, "time": time.time()}

    def report(self) -> None:
        body = self.health()
        if self.client is not None:
            self.client.publish(f"{self.settings.out}/health", json.dumps(body), qos=1,
                                retain=True)
        self._request("/v1/edge/report", body)

    # -- MQTT -------------------------------------------------------------------------------
    def _rows(self, payload: bytes, columns: list[str]) -> list[np.ndarray] | None:
        """The rows of one message (see the module docstring); None when any is unusable."""
        try:
            value = json.loads(payload)
            if isinstance(value, dict) and "rows" in value:
                items = value["rows"]
                if not isinstance(items, list):
                    return None
            else:
                items = [value.get("values", value) if isinstance(value, dict) else value]
            rows = []
            for item in items:
                if isinstance(item, dict):
                    row = [float(item[c]) for c in columns]
                elif isinstance(item, list):
                    row = [float(v) for v in item]
                else:
                    row = [float(item)]
                if len(row) != len(columns) or not all(np.isfinite(row)):
                    return None
                rows.append(np.array(row))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return rows

    def on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        """paho's thread: rows into the window; each full window onto the worker's queue."""
        self.counters.messages += 1
        with self.lock:
            model = self.model
            if model is None:
                return
            rows = self._rows(message.payload, model.columns)
            if rows is None:
                self.counters.bad_messages += 1
                return
            for row in rows:
                self.window.append(row)
                if len(self.window) < model.lookback:
                    continue
                if len(self.pending) == self.pending.maxlen:
                    self.counters.dropped += 1  # the oldest window goes unforecast
                self.pending.append((model, np.stack(self.window), row))
            self.ready.notify()

    def _take(self) -> list[tuple[LoadedModel, np.ndarray, np.ndarray]]:
        """What is queued (up to ``max_batch`` windows of one model); waits a little."""
        with self.ready:
            if not self.pending:
                self.ready.wait(0.5)
            batch: list[tuple[LoadedModel, np.ndarray, np.ndarray]] = []
            while self.pending and len(batch) < self.settings.max_batch:
                if batch and self.pending[0][0] is not batch[0][0]:
                    break
                batch.append(self.pending.popleft())
            return batch

    def work(self) -> None:
        """The worker thread: run each batch in one session call and publish its results."""
        while not self.stopping.is_set():
            batch = self._take()
            if batch:
                try:
                    self.process(batch)
                except Exception:  # a bad batch must not end the device's loop
                    log.exception("amml-edge: a batch of %d windows failed", len(batch))

    def process(self, batch: list[tuple[LoadedModel, np.ndarray, np.ndarray]]) -> None:
        model = batch[0][0]
        started = time.perf_counter()
        results = model.run(np.stack([window for _, window, _ in batch]))
        per_window = (time.perf_counter() - started) * 1000 / len(batch)
        if len(batch) >= 4 and self.settings.release_pages:
            return_free_heap()  # a batch's buffers, freed, back to the system
        c = self.counters
        c.batches += 1
        c.largest_batch = max(c.largest_batch, len(batch))
        c.latencies_ms.extend([per_window] * min(len(batch), 8))
        picks = [] if model.task == "detect" else [model.columns.index(o)
                                                   for o in model.outputs]
        for (_, window, row), result in zip(batch, results, strict=True):
            c.forecasts += 1
            body: dict[str, Any] = {"model": model.label, "window": len(window),
                                    "seq": c.forecasts, "batch": len(batch)}
            if model.task == "detect":
                score = float(result)
                body.update(score=score, scores=[score])
            else:
                with self.lock:
                    previous = self.previous if self.model is model else None
                    self.previous = result
                scores = None
                if previous is not None:  # the newest row against what was forecast for it
                    residual = (row[picks] - previous[0]) / model.out_scale
                    scores = (np.abs(residual) / model.residual_scale).tolist()
                body.update(outputs=model.outputs, forecast=result.tolist(),
                            score=max(scores) if scores else None, scores=scores)
            self.client.publish(self.settings.out, json.dumps(body), qos=0)

    def on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any,
                   _properties: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            return
        self.counters.connects += 1
        client.subscribe(self.settings.topic, qos=0)  # a clean session: subscribe again

    def on_disconnect(self, *_args: Any) -> None:
        self.counters.disconnects += 1

    def connect(self) -> None:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.settings.client_id or f"amml-edge-{os.getpid()}")
        client.on_message = self.on_message
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.max_queued_messages_set(MAX_QUEUED)
        client.will_set(f"{self.settings.out}/health", json.dumps({"status": "offline"}),
                        qos=1, retain=True)
        client.connect_async(self.settings.broker, self.settings.port, keepalive=10)
        client.loop_start()
        self.client = client

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        next_poll = next_report = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_poll:
                try:
                    self.check_assignment()
                except EdgeError as exc:
                    log.warning("amml-edge: %s", exc)
                next_poll = now + self.settings.poll
            if self.client is None and self.model is not None:
                self.start()
            if now >= next_report and self.model is not None:
                return_free_heap()  # what a large batch freed, back to the system
                try:
                    self.report()
                except EdgeError as exc:
                    log.warning("amml-edge: report: %s", exc)
                next_report = now + self.settings.report_every
            self.stopping.wait(min(self.settings.poll, self.settings.report_every, 0.5))
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        if self.client is not None:
            self.client.publish(f"{self.settings.out}/health",
                                json.dumps({"status": "offline"}), qos=1, retain=True)
            self.client.loop_stop()
            self.client.disconnect()
        if self.worker is not None:
            self.worker.join(5)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="amml-edge", description="Run the model assigned to this device between an MQTT "
        "broker and an AMML server.")
    parser.add_argument("--server", required=True, help="AMML server URL")
    parser.add_argument("--token", default=os.environ.get("AMML_EDGE_TOKEN"),
                        help="this device's key (or AMML_EDGE_TOKEN)")
    parser.add_argument("--trust-key", action="append", default=[],
                        help="hex public key whose signatures are accepted (repeatable; "
                        "or AMML_EDGE_TRUST, comma-separated)")
    parser.add_argument("--broker", default="127.0.0.1:1883", help="MQTT HOST[:PORT]")
    parser.add_argument("--topic", default="amml/edge/in", help="topic of incoming rows")
    parser.add_argument("--out", default="amml/edge/out", help="topic of forecasts")
    parser.add_argument("--poll", type=float, default=5.0, help="assignment poll, seconds")
    parser.add_argument("--report-every", type=float, default=10.0, help="health, seconds")
    parser.add_argument("--client-id", default="", help="MQTT client id")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help="windows run in one session call at most")
    parser.add_argument("--keep-pages", action="store_true",
                        help="keep the library pages loading touched resident (see "
                        "amml.edge.memory)")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give the device key: --token or AMML_EDGE_TOKEN")
    keys = list(args.trust_key) + [k for k in os.environ.get("AMML_EDGE_TRUST", "").split(",")
                                   if k.strip()]
    if not keys:
        parser.error("give at least one --trust-key (the server's public key, hex)")
    try:
        trusted = [bytes.fromhex(k.strip()) for k in keys]
    except ValueError:
        parser.error("--trust-key takes hex")
    host, _, port = args.broker.partition(":")
    return Settings(server=args.server, token=args.token, trusted=trusted, broker=host,
                    port=int(port or 1883), topic=args.topic, out=args.out, poll=args.poll,
                    report_every=args.report_every, client_id=args.client_id,
                    max_batch=max(1, args.max_batch), release_pages=not args.keep_pages)


def main(argv: list[str] | None = None) -> int:
    one_heap()  # before any thread starts (see amml.edge.memory)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    runner = Runner(parse_args(argv))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stopping.set())
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
