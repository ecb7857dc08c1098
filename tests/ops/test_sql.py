"""``source.sql`` against SQLite, the real PostgreSQL and the real MariaDB."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from amml import OpError, StepContext, Workflow, WorkflowValidationError, ops, run_workflow
from amml.ops.sources.sql import SqlSource
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import open_store

COLUMNS = ["temperature", "vibration", "load"]


def _frame(periods: int = 300, start: str = "2024-01-01") -> pd.DataFrame:
    frame = make_sensor_frame(periods=periods, start=start, seed=5)[COLUMNS]
    frame.index.name = "ts"
    return frame


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path):
    """(url, table name) of a fresh table holding a sensor series, in each database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sensors.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("mariadb_url")
    name = f"sensors_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    _frame().to_sql(name, engine, index=True)
    yield url, name
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
    engine.dispose()


def _read(**config) -> tuple[pd.DataFrame, dict]:
    result = SqlSource(**config).run(StepContext())
    return result["out"], result["report"]


def test_reads_the_same_table_from_every_database(db) -> None:
    url, name = db
    table, report = _read(url=url, table=name, time="ts", columns=COLUMNS)
    pd.testing.assert_frame_equal(table, _frame(), check_freq=False)
    assert report["bad_rows"] == 0 and report["rows_read"] == 300


def test_time_range_and_query(db) -> None:
    url, name = db
    table, _ = _read(url=url, table=name, time="ts", columns=["load"],  # quoted: reserved
                     start="2024-01-02", end="2024-01-03")
    expected = _frame().loc["2024-01-02":"2024-01-02 23:00"]
    pd.testing.assert_frame_equal(table, expected[["load"]], check_freq=False)
    queried, _ = _read(url=url, query=f"SELECT ts, temperature * 2 AS twice FROM {name}",
                       time="ts", start="2024-01-02", end="2024-01-03")
    assert list(queried.columns) == ["twice"]
    assert queried["twice"].tolist() == pytest.approx((expected["temperature"] * 2).tolist())


def test_incremental_extraction_reads_only_new_rows(db, tmp_path: Path) -> None:
    url, name = db
    with Workflow("incremental") as wf:
        readings = ops.source.sql(url=url, table=name, time="ts", columns=COLUMNS)
        ops.preprocess(readings, scale="zscore", name="scaled")
        ops.source.synthetic(periods=50, name="unrelated")
    store = open_store(tmp_path / "store")
    first = run_workflow(wf, store=store)
    assert first["readings"].shape == (300, 3)

    again = run_workflow(wf, store=store)
    assert {n: o.status for n, o in again.steps.items()} == dict.fromkeys(
        ["readings", "scaled", "unrelated"], "cached")

    newer = make_sensor_frame(periods=340, start="2024-01-01", seed=5)[COLUMNS].iloc[300:]
    newer.index.name = "ts"
    engine = create_engine(url)
    newer.to_sql(name, engine, index=True, if_exists="append")
    engine.dispose()
    third = run_workflow(wf, store=store)
    statuses = {n: o.status for n, o in third.steps.items()}
    assert statuses == {"readings": "ran", "scaled": "ran", "unrelated": "cached"}
    metrics = store.metadata.metrics(third.run_id, step_name="readings")
    read = {m["key"]: m["value"] for m in metrics}
    assert read["rows_read"] == 40 and read["rows"] == 340
    report = third.output("readings", "report")
    assert report["incremental"]["previous_rows"] == 300
    expected = pd.concat([_frame(), newer])
    pd.testing.assert_frame_equal(third["readings"], expected, check_freq=False)
    store.close()


def test_late_rows_trigger_a_full_reread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = create_engine(url)
    frame = _frame(100)
    frame.iloc[::2].to_sql("t", engine, index=True)
    with Workflow("late") as wf:
        ops.source.sql(url=url, table="t", time="ts", name="readings")
    store = open_store(tmp_path / "store")
    run_workflow(wf, store=store)
    frame.iloc[1::2].to_sql("t", engine, index=True, if_exists="append")  # older than newest
    result = run_workflow(wf, store=store)
    assert "late_rows" in result.output("readings", "report")["notes"]
    pd.testing.assert_frame_equal(result["readings"], frame, check_freq=False)
    store.close()


def test_bad_values_are_quarantined_or_rejected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (ts TEXT, x REAL)"))
        conn.execute(text("INSERT INTO t VALUES ('2024-01-01 00:00', 1.0), "
                          "('not a time', 2.0), ('2024-01-01 02:00', 'abc'), "
                          "('2024-01-01 03:00', 4.0)"))
    with pytest.raises(OpError, match="unparseable timestamps"):
        _read(url=url, table="t", time="ts")
    table, report = _read(url=url, table="t", time="ts", on_bad_rows="quarantine")
    assert table["x"].tolist() == [1.0, 4.0]
    assert report["bad_rows"] == 2
    assert set(report["problems"]) == {"unparseable_time", "non_numeric"}
    assert json.dumps(report)  # the report is a JSON artifact


def test_unreachable_server_names_host_and_port_not_the_password(monkeypatch) -> None:
    monkeypatch.setenv("DB_URL", "postgresql+psycopg://amml:s3cret@127.0.0.1:1/x")
    with pytest.raises(OpError) as info:
        _read(url_env="DB_URL", table="t", time="ts")
    assert "127.0.0.1:1" in str(info.value) and "s3cret" not in str(info.value)


def test_passwords_in_the_workflow_are_refused() -> None:
    with Workflow("secret") as wf:
        ops.source.sql(url="postgresql+psycopg://amml:s3cret@db/x", table="t", time="ts")
    from amml import compile_workflow

    with pytest.raises(WorkflowValidationError, match="url_env"):
        compile_workflow(wf)


def test_profiles_supply_the_url(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    _frame(20).to_sql("t", create_engine(url), index=True)
    (tmp_path / "profiles.yaml").write_text(f"warehouse:\n  url: {url}\n")
    monkeypatch.setenv("AMML_PROFILES", str(tmp_path / "profiles.yaml"))
    table, _ = _read(profile="warehouse", table="t", time="ts")
    assert len(table) == 20
    with pytest.raises(OpError, match="no connection profile 'nope'"):
        _read(profile="nope", table="t", time="ts")
