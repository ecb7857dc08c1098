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
  the newest row against the previous forecast to ``--out``;
* publishes health to ``--out/health`` (retained; ``offline`` as its last will) and reports it
  to the server (``POST /v1/edge/report``) every ``--report-every`` seconds;
* polls the assignment every ``--poll`` seconds and swaps the model in place when it changes
  (the window is kept when the columns are the same);
* survives a broker restart: paho reconnects, the subscription is renewed on each connect,
  the window lives in this process.

Memory stays bounded: the window is a deque of ``lookback`` rows, latencies a deque of 256,
and paho's outgoing queue is capped.
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

log = logging.getLogger("amml.edge")
#: Values of the newest row that do not parse leave the row out; this many in a row is logged.
MAX_QUEUED = 1000


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

    def forecast(self, window: np.ndarray) -> np.ndarray:
        """``(lookback, columns)`` original units -> ``(horizon, outputs)`` original units."""
        x = ((window - self.offset) / self.scale).astype(np.float32)[None]
        out = self.session.run(None, {"windows": x})[0][0]
        return out * self.out_scale + self.out_offset


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


@dataclass
class Counters:
    messages: int = 0
    bad_messages: int = 0
    forecasts: int = 0
    connects: int = 0
    disconnects: int = 0
    swaps: int = 0
    refused: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=256))


def rss_mb() -> float:
    """This process's resident memory, MB (Linux ``/proc``; else the peak from getrusage)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Runner:
    """The device loop: assignment polling in the calling thread, MQTT in paho's thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self.window: deque = deque(maxlen=1)
        self.previous: np.ndarray | None = None  # the last forecast, for the next score
        self.lock = threading.Lock()
        self.counters = Counters()
        self.stopping = threading.Event()
        self.client: Any = None
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
        with self.lock:
            old = self.model
            keep = old is not None and old.columns == model.columns
            rows = list(self.window) if keep else []
            self.window = deque(rows[-model.lookback:], maxlen=model.lookback)
            self.model, self.previous = model, None
            self.counters.swaps += 1
        log.info("amml-edge: running %s (window kept: %s)", model.label, keep)
        return True

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
                "refused": c.refused, "rss_mb": round(rss_mb(), 2),
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
    def _row(self, payload: bytes, columns: list[str]) -> np.ndarray | None:
        try:
            value = json.loads(payload)
            if isinstance(value, dict):
                value = value.get("values", value)
            if isinstance(value, dict):
                row = [float(value[c]) for c in columns]
            elif isinstance(value, list):
                row = [float(v) for v in value]
            else:
                row = [float(value)]
        except (ValueError, KeyError, TypeError):
            return None
        if len(row) != len(columns) or not all(np.isfinite(row)):
            return None
        return np.array(row)

    def on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        self.counters.messages += 1
        with self.lock:
            model = self.model
            if model is None:
                return
            row = self._row(message.payload, model.columns)
            if row is None:
                self.counters.bad_messages += 1
                return
            self.window.append(row)
            if len(self.window) < model.lookback:
                return
            window = np.stack(self.window)
            previous = self.previous
            started = time.perf_counter()
            forecast = model.forecast(window)
            self.counters.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.previous = forecast
        picks = [model.columns.index(o) for o in model.outputs]
        scores = None
        if previous is not None:  # the newest row against what was forecast for it
            residual = (row[picks] - previous[0]) / model.out_scale
            scores = (np.abs(residual) / model.residual_scale).tolist()
        self.counters.forecasts += 1
        body = {"model": model.label, "outputs": model.outputs,
                "forecast": forecast.tolist(), "score": max(scores) if scores else None,
                "scores": scores, "window": len(window), "seq": self.counters.forecasts}
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
                self.connect()
            if now >= next_report and self.model is not None:
                try:
                    self.report()
                except EdgeError as exc:
                    log.warning("amml-edge: report: %s", exc)
                next_report = now + self.settings.report_every
            self.stopping.wait(min(self.settings.poll, self.settings.report_every, 0.5))
        if self.client is not None:
            self.client.publish(f"{self.settings.out}/health",
                                json.dumps({"status": "offline"}), qos=1, retain=True)
            self.client.loop_stop()
            self.client.disconnect()


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
                    report_every=args.report_every, client_id=args.client_id)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    runner = Runner(parse_args(argv))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stopping.set())
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
