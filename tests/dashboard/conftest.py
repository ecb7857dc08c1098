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

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("AMML_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AMML_CHROMEDRIVER", "/usr/bin/chromedriver")
READY_S = 90.0


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


@contextmanager
def running(args: list[str], env: dict[str, str], probe: str) -> Iterator[str]:
    """A real server process (``python -m amml.cli ...``) on a free loopback port, stopped
    afterwards; yields its base URL once ``probe`` answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "amml.cli", *args, "--port", str(port)],
                               env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_S
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"the server exited ({process.returncode}): {output}")
            try:
                if httpx.get(base + probe, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not answer {probe} in {READY_S} s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="session")
def ui_server(demo: dict[str, Any]) -> Iterator[str]:
    with running(["ui", "--home", demo["env"]["AMML_HOME"]], demo["env"], "/ui/login") as url:
        yield url


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
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
