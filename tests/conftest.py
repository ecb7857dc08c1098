"""Shared fixtures: an isolated store per test, and the real PostgreSQL server.

Outside CI a missing PostgreSQL skips its tests with the reason; with CI=true it fails them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from amml.store import Store, open_store

#: The PostgreSQL server the tests use: a role allowed to create databases, and a database to
#: connect to while creating the session's own (``AMML_TEST_PG_URL`` points elsewhere).
PG_ADMIN_URL = os.environ.get("AMML_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# servers that really check passwords, started on spare ports (tests/auth_servers.py)
pytest_plugins = ["tests.auth_servers"]


def _pg_admin_conninfo() -> dict[str, object]:
    """``PG_ADMIN_URL`` as psycopg connection arguments."""
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    return {k: v for k, v in {"host": url.host or "127.0.0.1", "port": url.port or 5432,
                              "user": url.username, "password": url.password,
                              "dbname": url.database}.items() if v is not None}


def _pg_database_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name) \
        .render_as_string(hide_password=False)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own default store and working folder."""
    monkeypatch.setenv("AMML_HOME", str(tmp_path / ".amml"))
    monkeypatch.setenv("AMML_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("AMML_STORE_URL", raising=False)
    monkeypatch.delenv("AMML_ARTIFACTS_URL", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / ".amml")
    yield opened
    opened.close()


def _pg_available() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'amml[postgres]')"
    try:
        with psycopg.connect(**_pg_admin_conninfo(), connect_timeout=3):
            return None
    except Exception as exc:
        info = _pg_admin_conninfo()
        return (f"PostgreSQL at {info['host']}:{info['port']} (AMML_TEST_PG_URL) is not "
                f"reachable: {exc}")


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server (its URL), dropped afterwards;
    skips, or fails under CI=true, when the server is missing."""
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(problem)
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_database_url(name)
    finally:
        with psycopg.connect(**_pg_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with fresh_pg_database("amml_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same test against SQLite and the real PostgreSQL."""
    if request.param == "sqlite":
        opened = open_store(tmp_path / ".amml")
    else:
        opened = open_store(tmp_path / ".amml", url=request.getfixturevalue("pg_url"))
    yield opened
    opened.close()


def require_server(name: str, host: str, port: int) -> None:
    """Skip (outside CI) or fail (CI=true) when a real server is not listening."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        problem = f"{name} at {host}:{port} is not reachable ({exc})"
    if IN_CI:
        pytest.fail(f"CI=true and {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """The real MariaDB (root, empty password, database ``test``)."""
    require_server("MariaDB", "127.0.0.1", 3306)
    return "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_server("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    require_server("Mosquitto", "127.0.0.1", 1883)
    return "mqtt://127.0.0.1:1883"


@pytest.fixture(scope="session")
def influx_url() -> str:
    require_server("InfluxDB", "127.0.0.1", 8086)
    return "http://127.0.0.1:8086"
