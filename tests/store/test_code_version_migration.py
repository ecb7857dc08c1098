"""Migration 0004 upgrades a store made before code versions, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, insert, inspect, text
from typer.testing import CliRunner

from amml import Client, compile_workflow, run_workflow
from amml.cli.main import app
from amml.lang import load_yaml_text
from amml.store import open_store
from amml.store.code_version import CodeVersion
from amml.store.metadata import schema
from amml.store.metadata.store import HEAD_REVISION, MIGRATIONS
from amml.store.model_registry import ModelRegistry
from tests.conftest import fresh_pg_database
from tests.helpers import SMALL_YAML

CODE_COLUMNS = {"workflow_digest", "code_commit", "code_dirty", "amml_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the shared PostgreSQL one is already at head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_pg_database("amml_mig") as url:
        yield url


def _alembic(url: str, action, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            action(config, revision)
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_a_store_from_before_code_versions_upgrades_and_keeps_its_rows(
        fresh_url: str, tmp_path: Path) -> None:
    _alembic(fresh_url, command.upgrade, "0003")
    assert not CODE_COLUMNS & _columns(fresh_url, "runs")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:  # rows as the code before this change wrote them
        conn.execute(text(
            "INSERT INTO runs (id, workflow, kind, status, started_at, host, pid) "
            "VALUES ('oldrun0000000001', 'old', 'workflow', 'succeeded', 1.0, 'h', 1)"))
        conn.execute(text(
            "INSERT INTO model_versions (name, version, artifact_digest, artifact_type, "
            "run_id, metrics, signature, description, created_at, created_by) VALUES "
            "('old-model', 1, :digest, 'model', 'oldrun0000000001', '{}', '{}', '', 1.0, "
            "'ana')"), {"digest": "a" * 64})
    engine.dispose()

    store = open_store(tmp_path / "home", url=fresh_url)  # the new code migrates on open
    try:
        assert store.metadata.current_revision() == HEAD_REVISION
        for table in ("runs", "model_versions"):
            assert _columns(fresh_url, table) >= CODE_COLUMNS
        client = Client(store=store)
        old = client.run("oldrun")
        assert old["status"] == "succeeded"
        assert old["code_version"] == CodeVersion().to_json()  # nothing recorded, no error
        assert ModelRegistry(store).get("old-model", 1).code_version == CodeVersion()
        result = run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)), store=store)
        new = client.run(result.run_id)["code_version"]
        assert new["workflow_digest"] is not None and new["amml_version"] is not None
    finally:
        store.close()

    shown = CliRunner().invoke(app, ["show", "oldrun", "--home", str(tmp_path / "home")],
                               env={"AMML_STORE_URL": fresh_url})
    assert shown.exit_code == 0, shown.output
    assert "code: not recorded" in shown.output


def test_downgrade_to_0003_drops_the_columns_again(fresh_url: str) -> None:
    _alembic(fresh_url, command.upgrade, "head")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(insert(schema.runs),
                     [dict(id="r1", workflow="w", kind="workflow", status="running",
                           started_at=time.time(), host="h", pid=1, code_commit="c" * 40,
                           code_dirty=True)])
    engine.dispose()
    _alembic(fresh_url, command.downgrade, "0003")
    assert not CODE_COLUMNS & _columns(fresh_url, "runs")
    assert not CODE_COLUMNS & _columns(fresh_url, "model_versions")
    engine = create_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM runs")).scalars().all() == ["r1"]
    engine.dispose()
    _alembic(fresh_url, command.upgrade, "head")  # and up again
    assert _columns(fresh_url, "runs") >= CODE_COLUMNS
