"""Read commands never write; server stores change only through ``amml store init|upgrade``.

Every check runs on SQLite and on the real PostgreSQL (a fresh database per test), and
compares the whole database before and after: tables, rows and, on SQLite, the file's bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text, update
from typer.testing import CliRunner

from amml import StoreError, compile_workflow, run_workflow
from amml.cli.main import app
from amml.lang import load_yaml_text
from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger
from amml.store.metadata.schema import runs
from amml.store.metadata.store import HEAD_REVISION, MIGRATIONS
from tests.conftest import fresh_pg_database
from tests.helpers import SMALL_YAML


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store URL every command uses: a SQLite file under AMML_HOME, or an empty
    PostgreSQL database of this test's own (AMML_STORE_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / '.amml' / 'amml.db'}"
        return
    with fresh_pg_database("amml_ro") as url:
        monkeypatch.setenv("AMML_STORE_URL", url)
        yield url


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def snapshot(url: str) -> dict[str, object]:
    """Everything in the database: its tables and their rows (and the SQLite file's bytes)."""
    state: dict[str, object] = {}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        state["file"] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        if not path.exists():
            return state
        url = f"sqlite:///file:{path}?mode=ro&uri=true"  # looking must not write either
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            state["tables"] = tables
            for table in tables:
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                state[table] = sorted(repr(tuple(row)) for row in rows)
    finally:
        engine.dispose()
    return state


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _fill(url: str, home: Path) -> str:
    """A store with a run, a ledger and a run left 'running' by a dead process."""
    store = open_store(home, url=url)  # the Python API creates the schema on first use
    try:
        result = run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)), store=store)
        ledger = Ledger(store, f"{result.run_id}/model", KeyRing())
        for epoch in range(3):
            ledger.append("epoch", epoch=epoch, checkpoint=b"w%d" % epoch,
                          metrics={"val_loss": 1.0 / (epoch + 1)})
        store.metadata.create_run(run_id="deadbeef00000000", workflow="crashed")
        with store.metadata.engine.begin() as conn:  # owned by a process that is gone
            conn.execute(update(runs).where(runs.c.id == "deadbeef00000000")
                         .values(pid=2**22 + 7))
    finally:
        store.close()
    return result.run_id


READS = [("runs",), ("runs", "--json"), ("show",), ("lineage", "score"), ("models", "list"),
         ("models", "show", "oil"), ("ledger", "list"), ("ledger", "verify"), ("keys", "list")]


@pytest.mark.parametrize("state", ["current", "behind", "empty"])
def test_read_commands_never_write(backend: str, state: str, tmp_path: Path) -> None:
    """On a store at the current revision, one an older AMML made, and no store at all:
    no read command creates, migrates or changes anything."""
    if state == "current":
        _reads_of_a_current_store(backend, tmp_path)
        return
    if state == "behind":
        _old_store(backend, tmp_path)
    before = snapshot(backend)
    for args in READS:
        result = _invoke(*args)
        assert snapshot(backend) == before, f"'amml {' '.join(args)}' wrote to the store"
        if state == "behind" or backend.startswith("postgresql"):
            # an old or missing server schema is named, with the command that fixes it
            assert result.exit_code == 1, (args, result.output)
            assert "amml store " in result.output, (args, result.output)


def _old_store(url: str, tmp_path: Path) -> None:
    """A store an older AMML made (revision 0003), holding one run."""
    (tmp_path / ".amml").mkdir(exist_ok=True)
    _alembic_to(url, "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO runs (id, workflow, kind, status, started_at, host, pid) "
            "VALUES ('oldrun0000000001', 'old', 'workflow', 'succeeded', 1.0, 'h', 1)"))
    engine.dispose()


def _reads_of_a_current_store(backend: str, tmp_path: Path) -> None:
    run_id = _fill(backend, tmp_path / ".amml")
    reads = [
        ("runs",), ("runs", "--json"), ("show",), ("show", run_id[:8], "--json"),
        ("lineage", "score"), ("lineage", f"{run_id}:model", "--json"),
        ("models", "list"), ("models", "list", "--json"),
        ("ledger", "list"), ("ledger", "show", run_id), ("ledger", "verify"),
        ("ledger", "verify", run_id, "--json"), ("ledger", "head", run_id),
        ("keys", "list"), ("keys", "list", "--json"),
    ]
    before = snapshot(backend)
    assert before["tables"]
    for args in reads:
        result = _invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert snapshot(backend) == before, f"'amml {' '.join(args)}' wrote to the store"
    # a read that fails (unknown model, unknown run) writes nothing either
    for args in (("models", "show", "nope"), ("show", "ffffffff"), ("lineage", "nope")):
        assert _invoke(*args).exit_code == 1
        assert snapshot(backend) == before, f"'amml {' '.join(args)}' wrote to the store"
    listed = json.loads(_invoke("runs", "--json").stdout)
    assert {r["id"]: r["status"] for r in listed}["deadbeef00000000"] == "running"
    # the next run, a writer, is the one that marks the dead run
    assert _invoke("run", str(_flow(tmp_path)), "--json").exit_code == 0
    listed = json.loads(_invoke("runs", "--json").stdout)
    assert {r["id"]: r["status"] for r in listed}["deadbeef00000000"] == "interrupted"


def _flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(SMALL_YAML)
    return path


def test_read_commands_on_a_missing_sqlite_store_create_nothing(tmp_path: Path) -> None:
    for args in (("runs", "--json"), ("models", "list", "--json"), ("ledger", "list", "--json"),
                 ("keys", "list", "--json")):
        result = _invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout) == []
    assert _invoke("show").exit_code == 1  # nothing recorded yet
    store = open_store(tmp_path / ".amml", read_only=True)  # reads as empty, writes nothing
    try:
        assert store.metadata.list_runs() == []
        with pytest.raises(StoreError):
            store.metadata.create_run(run_id="0123456789abcdef", workflow="w")
    finally:
        store.close()
    assert not (tmp_path / ".amml" / "amml.db").exists()


def test_server_store_requires_init(backend: str, tmp_path: Path) -> None:
    if backend.startswith("sqlite"):  # the embedded default still creates itself
        assert _invoke("run", str(_flow(tmp_path)), "--json").exit_code == 0
        assert _revision(backend) == HEAD_REVISION
        return
    empty = snapshot(backend)
    assert empty["tables"] == []
    for args in (("runs",), ("ledger", "verify"), ("models", "list"),
                 ("run", str(_flow(tmp_path))), ("keys", "create")):
        result = _invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "amml store init" in result.output and "no AMML schema" in result.output
        assert snapshot(backend) == empty, f"'amml {' '.join(args)}' created the schema"
    assert _invoke("store", "upgrade").exit_code == 1  # nothing to upgrade: init first
    created = _invoke("store", "init", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout) == {"store": backend, "action": "init",
                                          "from_revision": None, "revision": HEAD_REVISION}
    assert _revision(backend) == HEAD_REVISION
    assert "already at schema revision" in _invoke("store", "init").output
    assert _invoke("run", str(_flow(tmp_path)), "--json").exit_code == 0
    assert len(json.loads(_invoke("runs", "--json").stdout)) == 1


def _alembic_to(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_store_upgrade_migrates_an_old_server_store(backend: str, tmp_path: Path) -> None:
    _old_store(backend, tmp_path)
    old = snapshot(backend)
    result = _invoke("runs")  # a read never migrates, not even the embedded store
    assert result.exit_code == 1 and "amml store upgrade" in result.output
    assert "revision 0003" in result.output
    assert snapshot(backend) == old
    if backend.startswith("postgresql"):
        for args in (("run", str(_flow(tmp_path))), ("store", "init")):
            result = _invoke(*args)
            assert result.exit_code == 1 and "amml store upgrade" in result.output, args
            assert snapshot(backend) == old, f"'amml {' '.join(args)}' migrated the store"
    upgraded = _invoke("store", "upgrade", "--json")
    assert upgraded.exit_code == 0, upgraded.output
    assert json.loads(upgraded.stdout)["from_revision"] == "0003"
    assert _revision(backend) == HEAD_REVISION
    listed = json.loads(_invoke("runs", "--json").stdout)
    assert [r["id"] for r in listed] == ["oldrun0000000001"]
    assert "already at schema revision" in _invoke("store", "upgrade").output


def test_store_from_a_newer_amml_is_named_not_migrated(backend: str, tmp_path: Path) -> None:
    open_store(tmp_path / ".amml", url=backend).close()
    engine = create_engine(backend)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for args in (("runs",), ("store", "upgrade")):
        result = _invoke(*args)
        assert result.exit_code == 1 and "newer AMML" in result.output, args
    assert _revision(backend) == "9999"


def test_read_only_store_refuses_writes(backend: str, tmp_path: Path) -> None:
    open_store(tmp_path / ".amml", url=backend).close()
    before = snapshot(backend)
    store = open_store(tmp_path / ".amml", url=backend, read_only=True)
    try:
        with pytest.raises(StoreError):
            store.metadata.create_run(run_id="0123456789abcdef", workflow="w")
        with pytest.raises(StoreError):
            store.metadata.migrate()
        assert store.metadata.mark_interrupted() == []
    finally:
        store.close()
    assert snapshot(backend) == before
