"""Servers that really check credentials, started by the tests on spare loopback ports.

The machine's shared servers accept anything (PostgreSQL trusts loopback, Redis and
Mosquitto take any password, InfluxDB has auth off), so a wrong-password test against them
proves nothing. These fixtures start private instances that refuse a wrong password:

* PostgreSQL: a throwaway cluster (``initdb --auth=scram-sha-256``) run as ``postgres``;
* MariaDB: a user with a password on the shared server (MariaDB always checks passwords);
* Redis: ``redis-server --requirepass``;
* Mosquitto: ``allow_anonymous false`` with a ``password_file``;
* InfluxDB 1.x: ``auth-enabled = true`` with an admin user.

Each yields an :class:`AuthServer` with a right and a wrong URL. A missing binary skips the
tests that need it, or fails them under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import IN_CI

#: The password the servers accept; it has characters that need quoting in a URL.
PASSWORD = "Right/pa:ss@" + uuid.uuid4().hex[:6]
WRONG = "wrong-" + uuid.uuid4().hex[:6]
USER = "amml_auth"


@dataclass(frozen=True)
class AuthServer:
    host: str
    port: int
    url: Callable[[str], str]  # the URL for a given password

    @property
    def right_url(self) -> str:
        return self.url(PASSWORD)

    @property
    def wrong_url(self) -> str:
        return self.url(WRONG)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _missing(what: str) -> None:
    problem = f"{what} is not installed, so the real-authentication tests cannot run"
    if IN_CI:
        pytest.fail(f"CI=true and {problem}")
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    port, folder = _free_port(), tmp_path_factory.mktemp("redis-auth")
    log = folder / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                 "--requirepass", PASSWORD, "--save", "",
                                 "--appendonly", "no", "--dir", str(folder)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, log)
        yield AuthServer("127.0.0.1", port,
                         lambda pw: f"redis://:{quote(pw, safe='')}@127.0.0.1:{port}/0")
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def mqtt_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    broker, passwd = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None), \
        shutil.which("mosquitto_passwd")
    if broker is None or passwd is None:
        _missing("mosquitto / mosquitto_passwd")
    port, folder = _free_port(), tmp_path_factory.mktemp("mqtt-auth")
    subprocess.run([passwd, "-c", "-b", str(folder / "passwords"), USER, PASSWORD],
                   check=True, capture_output=True)
    (folder / "passwords").chmod(0o600)
    (folder / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\nuser root\n"
        f"password_file {folder / 'passwords'}\npersistence false\n")
    log = folder / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen([broker, "-c", str(folder / "mosquitto.conf")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, log)
        yield AuthServer("127.0.0.1", port,
                         lambda pw: f"mqtt://{USER}:{quote(pw, safe='')}@127.0.0.1:{port}")
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def influx_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    import httpx

    binary = shutil.which("influxd") or (
        "/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None)
    if binary is None:
        _missing("influxd (InfluxDB 1.x)")
    port, rpc, folder = _free_port(), _free_port(), tmp_path_factory.mktemp("influx-auth")
    (folder / "influxdb.conf").write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{folder}/meta"\n'
        f'[data]\n  dir = "{folder}/data"\n  wal-dir = "{folder}/wal"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  auth-enabled = true\n'
        "  log-enabled = false\n[monitor]\n  store-enabled = false\n")
    log = folder / "log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "-config", str(folder / "influxdb.conf")],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_listening(port, proc, log)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the HTTP service answers a moment after the port opens
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/ping", timeout=1).status_code == 204:
                    break
            time.sleep(0.1)
        # the first user may be created without credentials (InfluxDB's bootstrap rule)
        created = httpx.post(f"{base}/query", data={
            "q": f"CREATE USER {USER} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES"})
        assert created.status_code == 200, created.text
        yield AuthServer("127.0.0.1", port, lambda pw: (
            f"http://127.0.0.1:{port}/?u={USER}&p={quote(pw, safe='')}"))
    finally:
        _stop(proc)


def influx_write(server: AuthServer, database: str, lines: str) -> None:
    """Create ``database`` and write line protocol, as the admin user."""
    import httpx

    auth = (USER, PASSWORD)
    base = f"http://{server.address}"
    done = httpx.post(f"{base}/query", data={"q": f'CREATE DATABASE "{database}"'}, auth=auth)
    assert done.status_code == 200 and "error" not in json.dumps(done.json()), done.text
    done = httpx.post(f"{base}/write", params={"db": database, "precision": "s"},
                      content=lines.encode(), auth=auth)
    assert done.status_code == 204, done.text


@pytest.fixture(scope="session")
def postgres_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """A throwaway PostgreSQL cluster with scram-sha-256 for every connection."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        _missing("PostgreSQL's initdb")
    bindir = bins[-1].parent
    import tempfile

    port = _free_port()
    # not under pytest's temporary folder: that is private to root, and the server runs as
    # ``postgres``
    folder = Path(tempfile.mkdtemp(prefix="amml-pg-auth-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data = folder / "data"
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(pwfile, "postgres")
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", USER,
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync"],
                   check=True, capture_output=True)
    log = folder / "log"
    with open(log, "w") as out:
        if as_postgres:
            shutil.chown(log, "postgres")
        proc = subprocess.Popen([*as_postgres, str(bindir / "postgres"), "-D", str(data),
                                 "-p", str(port), "-k", str(folder), "-c",
                                 "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, log)
        # the port opens before the server accepts sessions ("the database system is
        # starting up"): wait until pg_isready says it accepts connections
        for _ in range(600):
            ready = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p",
                                    str(port), "-q"], check=False)
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        yield AuthServer("127.0.0.1", port, lambda pw: (
            f"postgresql+psycopg://{USER}:{quote(pw, safe='')}@127.0.0.1:{port}/postgres"))
    finally:
        _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_auth() -> Iterator[AuthServer]:
    """A user with a password on the shared MariaDB, dropped afterwards."""
    from sqlalchemy import create_engine, text

    from tests.conftest import require_server

    require_server("MariaDB", "127.0.0.1", 3306)
    admin = create_engine("mysql+pymysql://root@127.0.0.1:3306/test")
    user = f"{USER}_{uuid.uuid4().hex[:6]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": PASSWORD})
        conn.execute(text(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY :pw"),
                     {"pw": PASSWORD})
        for host in ("%", "localhost"):
            conn.execute(text(f"GRANT ALL ON test.* TO '{user}'@'{host}'"))
    try:
        yield AuthServer("127.0.0.1", 3306, lambda pw: (
            f"mysql+pymysql://{user}:{quote(pw, safe='')}@127.0.0.1:3306/test"))
    finally:
        with admin.begin() as conn:
            for host in ("%", "localhost"):
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
        admin.dispose()
