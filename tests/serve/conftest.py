"""Small registered models and a running test application for the serving tests.

``oil``: one column OT, lookback 8, horizon 4, hourly. Version 1 is ``naive`` (repeats the
last value), version 2 ``seasonal_naive`` with season 4 (repeats the last four values), so
a forecast tells which version made it: on ``0..7`` they answer ``[7, 7, 7, 7]`` and
``[4, 5, 6, 7]``. ``multi``: inputs a, b, output b (the MS setting), naive.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from amml.ops.models.channel import ChannelForecaster
from amml.ops.models.forecaster import Forecaster
from amml.serve import ServeConfig
from amml.serve.app import create_app
from amml.serve.auth import create_key
from amml.store import Store
from amml.store.model_registry import ModelRegistry

LOOKBACK, HORIZON = 8, 4
WINDOW = [float(i) for i in range(LOOKBACK)]
BY_VERSION = {1: [7.0] * HORIZON, 2: [4.0, 5.0, 6.0, 7.0]}
#: How long a real server may take to become ready. Starting one imports torch, pandas and
#: FastAPI in every worker: ~3 s alone, but 15 s was exceeded on a 2-core machine shared with
#: other test runs, and a readiness wait is not what these tests measure.
READY_S = 60.0


def baseline(kind: str, columns: list[str], outputs: list[str], season: int = 4
             ) -> ChannelForecaster:
    return Forecaster(kind, LOOKBACK, HORIZON, season, columns=columns, outputs=outputs)


def signature(columns: list[str], outputs: list[str], **extra) -> dict:
    return {"freq": "1h", "lookback": LOOKBACK, "horizon": HORIZON, "columns": columns,
            "outputs": outputs, **extra}


def register_models(store: Store) -> ModelRegistry:
    registry = ModelRegistry(store)
    sig = signature(["OT"], ["OT"])
    registry.register("oil", baseline("naive", ["OT"], ["OT"]), signature=sig)
    registry.register("oil", baseline("seasonal_naive", ["OT"], ["OT"]), signature=sig)
    registry.set_alias("oil", "champion", 1, actor="test", reason="first")
    registry.register("multi", baseline("naive", ["a", "b"], ["b"]),
                      signature=signature(["a", "b"], ["b"]))
    return registry


def wait_until(check, timeout: float = 10.0, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError("condition not met in time")


class Served:
    """The test application with its store, registry and keys."""

    def __init__(self, client: TestClient, store: Store, registry: ModelRegistry,
                 keys: dict[str, str]) -> None:
        self.client, self.store, self.registry, self.keys = client, store, registry, keys
        self.state = client.app.state.amml  # type: ignore[attr-defined]

    def auth(self, which: str = "predict") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[which]}"}

    def post(self, path: str, key: str = "predict", **kwargs):
        headers = {**self.auth(key), **kwargs.pop("headers", {})}
        return self.client.post(path, headers=headers, **kwargs)

    def get(self, path: str, key: str = "read", **kwargs):
        return self.client.get(path, headers=self.auth(key), **kwargs)


@contextmanager
def serving(store: Store, tmp_path: Path, models: tuple[str, ...] = ("oil@champion", "multi"),
            **settings: Any) -> Iterator[Served]:
    """The test application over ``store``, with ``settings`` overriding the configuration."""
    registry = register_models(store)
    keys = {scope: create_key(store, scope=scope)[1] for scope in ("read", "predict", "admin")}
    keys["oil-only"] = create_key(store, scope="predict", models=["oil"])[1]
    config = ServeConfig(models=list(models), home=str(tmp_path / ".amml"),
                         poll_interval=0.05, keys_refresh=0.05, log_flush_interval=0.05,
                         **settings)
    with TestClient(create_app(config)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        yield Served(client, store, registry, keys)


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[Served]:
    with serving(store, tmp_path) as app:
        yield app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_server(home: str, *options: str, ready_s: float = READY_S
                   ) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``amml serve`` on a free loopback port: (base URL, process), stopped after."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "amml.cli", "serve", "--port", str(port), "--home", home,
         *options], env={**os.environ, "AMML_HOME": home}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            assert server.poll() is None, server.stdout.read()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > ready_s:
                raise AssertionError(f"server not ready in {ready_s} s")
            time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        server.wait(30)
