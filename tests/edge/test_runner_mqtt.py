"""The real ``amml-edge`` runner (a subprocess) between a real Mosquitto broker, started here on
a spare port, and a real AMML server: it fetches and verifies its model, forecasts from its
rolling window, keeps that window across a broker restart, and swaps models when its group's
assignment moves."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from amml.edge.export import export_variant, public_key_hex
from amml.ops.models.contract import make_model
from amml.registry import ModelRegistry
from amml.serve.auth import create_key
from amml.store import Store, open_store
from amml.store.devices import list_devices, set_assignment
from tests.conftest import IN_CI

LOOKBACK, HORIZON = 16, 4
SCALER = {"v": {"offset": 10.0, "scale": 2.0}}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _mosquitto(port: int, folder: Path) -> subprocess.Popen:
    config = folder / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_port(port)
    return proc


@pytest.fixture
def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        if IN_CI:
            pytest.fail("CI=true and the mosquitto binary is not installed")
        pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
    os.environ["PATH"] = f"{Path(found).parent}:{os.environ['PATH']}"
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Store, str]]:
    """An AMML server on a spare port (uvicorn in a thread), its store and an admin key."""
    import uvicorn

    from amml.serve.app import create_app
    from amml.serve.config import ServeConfig

    store = open_store(tmp_path / "home")
    registry = ModelRegistry(store)
    signature = {"lookback": LOOKBACK, "horizon": HORIZON, "columns": ["v"], "outputs": ["v"],
                 "freq": "h", "scaler": SCALER}
    linear = make_model("linear", lookback=LOOKBACK, horizon=HORIZON, columns=["v"],
                        outputs=["v"])
    series = np.sin(np.arange(600) * 2 * np.pi / 12)
    linear.fit(series)
    registry.register("oil", linear, signature=signature)
    registry.register("oil", make_model("naive", lookback=LOOKBACK, horizon=HORIZON,
                                        columns=["v"], outputs=["v"]), signature=signature)
    registry.set_alias("oil", "champion", 1, actor="test")
    for ref in ("oil@1", "oil@2"):
        export_variant(store, ref, "int8")
    _, admin = create_key(store, scope="admin")
    port = _port()
    app = create_app(ServeConfig(models=["oil@champion"], auth=True), store=store)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    _wait_port(port)
    yield f"http://127.0.0.1:{port}", store, admin
    uv.should_exit = True
    thread.join(10)
    store.close()


class Listener:
    """A paho subscriber to the runner's topics that reconnects by itself."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.forecasts: queue.Queue = queue.Queue()
        self.health: queue.Queue = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-listener")
        client.on_connect = lambda c, *_: c.subscribe("dev/out/#")
        client.on_message = self._message
        client.reconnect_delay_set(1, 1)
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _message(self, _c: Any, _u: Any, message: Any) -> None:
        body = json.loads(message.payload)
        (self.health if message.topic.endswith("/health") else self.forecasts).put(body)

    def send(self, value: float) -> None:
        self.client.publish("dev/in", json.dumps({"values": {"v": value}}), qos=0)

    def forecast(self, timeout: float = 10.0,
                 where: Any = lambda body: True) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = self.forecasts.get(timeout=0.2)
            except queue.Empty:
                continue
            if where(body):
                return body
        raise AssertionError("no forecast arrived")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_runner_survives_broker_restart_and_follows_its_assignment(
        mosquitto_binary: str, server: tuple[str, Store, str], tmp_path: Path) -> None:
    url, store, admin = server
    headers = {"Authorization": f"Bearer {admin}"}
    reply = httpx.post(f"{url}/v1/edge/devices", json={"name": "pump-1", "group": "pumps"},
                       headers=headers)
    assert reply.status_code == 201, reply.text
    device = reply.json()
    assert device["public_key"] == public_key_hex()
    reply = httpx.put(f"{url}/v1/edge/assignments/pumps",
                      json={"model": "oil@champion", "format": "int8"}, headers=headers)
    assert reply.status_code == 200, reply.text

    port = _port()
    broker = _mosquitto(port, tmp_path)
    listener = Listener(port)
    env = {**os.environ, "AMML_EDGE_TOKEN": device["token"]}
    runner = subprocess.Popen(
        [sys.executable, "-m", "amml.edge.runner", "--server", url, "--trust-key",
         device["public_key"], "--broker", f"127.0.0.1:{port}", "--topic", "dev/in",
         "--out", "dev/out", "--poll", "0.5", "--report-every", "0.5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # until the runner is connected, rows are lost: send until forecasts come
        values = 10.0 + 2.0 * np.sin(np.arange(2000) * 2 * np.pi / 12)
        at = 0
        first = None
        deadline = time.monotonic() + 30
        while first is None and time.monotonic() < deadline:
            listener.send(float(values[at]))
            at += 1
            with contextlib.suppress(queue.Empty):
                first = listener.forecasts.get(timeout=0.05)
        assert first is not None, runner.stdout.read1().decode() if runner.stdout else ""
        assert first["model"] == "oil@1/int8" and first["window"] == LOOKBACK
        assert np.array(first["forecast"]).shape == (HORIZON, 1)

        # the broker goes away and comes back: the runner reconnects and keeps its window,
        # so ONE row after the restart gives a forecast (a fresh window would need 16)
        broker.terminate()
        broker.wait(10)
        time.sleep(1.0)
        broker = _mosquitto(port, tmp_path)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            health = listener.health.get(timeout=15)
            if health.get("connects", 0) >= 2:
                break
        assert health["connects"] >= 2 and health["window"] == LOOKBACK
        while not listener.forecasts.empty():
            listener.forecasts.get()
        listener.send(float(values[at]))
        after = listener.forecast(timeout=5)
        assert after["model"] == "oil@1/int8" and after["window"] == LOOKBACK
        assert after["score"] is not None  # scored against the forecast before the restart

        # the group moves to version 2 (naive): the runner swaps it in, window kept
        set_assignment(store, "pumps", "oil@2", "int8", actor="test")
        swapped = None
        deadline = time.monotonic() + 15
        while swapped is None and time.monotonic() < deadline:
            at += 1
            listener.send(float(values[at]))
            try:
                body = listener.forecast(timeout=0.3)
            except AssertionError:
                continue
            if body["model"] == "oil@2/int8":
                swapped = body
        assert swapped is not None, "the runner did not follow the new assignment"
        # naive repeats the last value, in original units (the scaler went both ways)
        assert np.allclose(swapped["forecast"], values[at], atol=1e-4)

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reported = list_devices(store)[0].last_report
            if reported and reported.get("model") == "oil@2/int8":
                break
            time.sleep(0.2)
        assert reported["model"] == "oil@2/int8" and reported["rss_mb"] > 0
        assert reported["swaps"] == 2 and reported["refused"] == 0
    finally:
        runner.terminate()
        try:
            runner.wait(10)
        except subprocess.TimeoutExpired:
            runner.kill()
        listener.stop()
        broker.terminate()
        broker.wait(10)
