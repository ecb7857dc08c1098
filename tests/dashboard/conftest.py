"""The dashboard in a real browser: headless Debian Chromium driven by Selenium against a
real uvicorn server (``amml ui``, and ``amml serve --ui``) over a store filled by real runs.

Outside CI a missing Chromium, chromedriver or selenium skips with the reason; with CI=true
it fails (``.ci/run`` installs ``chromium chromium-driver`` when missing).
"""

from __future__ import annotations

import os
import shutil
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

import amml.store.metadata  # noqa: F401  (the schema first: a table module imports the keys)
from tests.conftest import IN_CI

CHROMIUM = os.environ.get("AMML_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AMML_CHROMEDRIVER", "/usr/bin/chromedriver")
#: Starting a server imports FastAPI, pandas and (serve) PyTorch: seconds alone, minutes on a
#: machine shared by many test runs; a readiness wait is not what these tests measure.
READY_S = 300.0


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'amml[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return (f"{path} is missing: install Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver)")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store filled by real runs (see ``fixtures.fill_store``) and three API keys."""
    from amml.serve.auth import create_key
    from amml.store import open_store
    from tests.dashboard.fixtures import fill_store

    root = tmp_path_factory.mktemp("dashboard")
    env = {"AMML_HOME": str(root / ".amml"), "AMML_KEY_DIR": str(root / "keys"),
           "AMML_USER": "fixture"}
    with _environment(**env):
        info = fill_store(root / "workflows")
        with open_store() as store:
            info["keys"] = {scope: create_key(store, scope=scope, label=f"{scope}-user")[1]
                            for scope in ("read", "predict", "admin")}
    info.update(root=root, env=env)
    return info


class Server:
    """A real server process (``python -m amml.cli ...``) on a free loopback port."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "amml.cli", *args, "--port", str(port)],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait(self, probe: str, ok: tuple[int, ...] = (200, 303)) -> str:
        """The base URL, once ``probe`` answers with one of ``ok``."""
        deadline = time.monotonic() + READY_S
        while True:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise AssertionError(f"the server exited ({self.process.returncode}): {output}")
            try:
                if httpx.get(self.base + probe, timeout=2).status_code in ok:
                    return self.base
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.base}{probe} did not answer in {READY_S} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture(scope="session")
def servers(demo: dict[str, Any]) -> Iterator[dict[str, Server]]:
    """``amml ui`` and ``amml serve --ui`` over the demo store, started together so that
    their start-ups (imports, loading the model) overlap with the other tests."""
    home = demo["env"]["AMML_HOME"]
    started = {"ui": Server(["ui", "--home", home], demo["env"]),
               "serve": Server(["serve", "--ui", "--home", home, "--model", "sensor@champion"],
                               demo["env"])}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def ui_server(servers: dict[str, Server]) -> str:
    return servers["ui"].wait("/ui/login")


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (``AMML_SCREENSHOTS`` to keep them somewhere known)."""
    wanted = os.environ.get("AMML_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = _missing_browser()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--disable-gpu"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(180)
    # selenium's own HTTP client gives chromedriver 120 s per command: a first page (4.8 MB of
    # plotly.min.js to parse) on a machine shared by many test runs can take longer
    driver.command_executor._client_config.timeout = 300
    try:
        yield driver
    finally:
        driver.quit()
