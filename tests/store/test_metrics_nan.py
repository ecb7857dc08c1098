"""NaN and +-Inf metrics are stored faithfully, on SQLite and PostgreSQL, and nothing else is
lost: the points around them, the run's status, the migration's older rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from alembic import command
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from amml import Client, Op, OpConfig, compile_workflow, run_workflow
from amml.cli.main import app
from amml.lang import load_yaml_text
from amml.ops.registry import REGISTRY
from amml.store import Store, open_store
from tests.store.test_code_version_migration import _alembic, fresh_url  # noqa: F401

NON_FINITE = [0.5, math.nan, math.inf, -math.inf, 0.25]


def _same(values: list[float], expected: list[float]) -> bool:
    return len(values) == len(expected) and all(
        (math.isnan(a) and math.isnan(b)) or a == b
        for a, b in zip(values, expected, strict=True))


def test_nan_metric_is_stored_and_nothing_else_is_lost(any_store: Store) -> None:
    client = Client(store=any_store)
    with client.start_run("diverging") as run:  # queued writes, committed in groups
        for step, value in enumerate(NON_FINITE):
            run.log_metric("loss", value, step=step)
    points = client.metrics(run.id, "loss")
    assert _same([p["value"] for p in points], NON_FINITE)
    assert [p["step"] for p in points] == [0, 1, 2, 3, 4]
    info = client.run(run.id)
    assert info["status"] == "succeeded" and info["error"] is None
    assert info["metrics"] == [{"step_name": "", "key": "loss", "value": 0.25, "points": 5}]


def test_nan_metric_in_synchronous_and_batch_logging(any_store: Store) -> None:
    client = Client(store=any_store)
    with client.start_run("sync", synchronous=True) as run:
        run.log_metric("a", 1.0, step=0)
        run.log_metric("a", math.nan, step=1)  # one row: the compiled single-row statement
        run.log_metrics({"b": math.inf, "c": 2.0}, step=0)
        # a big batch (COPY on PostgreSQL) with non-finite values among finite ones
        run.log_batch(("d", [1.0, math.nan, -math.inf][i % 3], i) for i in range(600))
    assert _same([p["value"] for p in client.metrics(run.id, "a")], [1.0, math.nan])
    assert client.metrics(run.id, "b")[0]["value"] == math.inf
    d = [p["value"] for p in client.metrics(run.id, "d")]
    assert _same(d, [[1.0, math.nan, -math.inf][i % 3] for i in range(600)])
    last = {m["key"]: m["value"] for m in client.run(run.id)["metrics"]}
    assert last["a"] != last["a"] and last["b"] == math.inf and last["d"] == -math.inf
    assert client.run(run.id)["status"] == "succeeded"


class _NanMetric(Op):
    name = "tests.nan_metric"
    inputs: dict = {}
    outputs = {"out": "table"}
    Config = OpConfig

    def run(self, ctx, **_):
        ctx.log_metric("loss", 1.5, step=0)
        ctx.log_metrics({"loss": math.nan, "grad": math.inf}, step=1)
        return pd.DataFrame({"x": [1.0]}, index=pd.date_range("2024-01-01", periods=1))


def test_nan_metric_logged_by_an_op_is_stored_and_the_run_succeeds(any_store: Store) -> None:
    REGISTRY.register(_NanMetric)
    try:
        compiled = compile_workflow(load_yaml_text(
            "name: nan-op\nsteps:\n  s: {op: tests.nan_metric}\n"))
        result = run_workflow(compiled, store=any_store)
    finally:
        REGISTRY.unregister("tests.nan_metric")
    assert result.status == "succeeded"
    client = Client(store=any_store)
    assert _same([p["value"] for p in client.metrics(result.run_id, "loss")], [1.5, math.nan])
    assert client.metrics(result.run_id, "grad")[0]["value"] == math.inf
    assert client.run(result.run_id)["status"] == "succeeded"


def test_a_metric_the_store_cannot_take_ends_the_run_failed_not_running(
        any_store: Store) -> None:
    client = Client(store=any_store)
    try:
        with client.start_run("unstorable") as run:
            run.log_metric("loss", 0.5, step=0)
            run.flush()
            run.log_metric("loss", 0.4, step=2**70)  # beyond a 64-bit step column
    except Exception as exc:
        message = str(exc)
    else:
        raise AssertionError("the unstorable point was accepted")
    assert "writing metadata failed" in message
    assert "INSERT" not in message and "parameters" not in message  # no SQL dump
    info = client.run(run.id)
    assert info["status"] == "failed" and "writing metadata failed" in info["error"]
    assert [p["value"] for p in client.metrics(run.id, "loss")] == [0.5]


def test_show_prints_non_finite_metrics(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as client, client.start_run("show") as run:
        run.log_metrics({"loss": math.nan, "up": math.inf, "down": -math.inf, "ok": 1.0})
    runner = CliRunner()
    table = runner.invoke(app, ["show", run.id, "--home", str(tmp_path / "home")])
    assert table.exit_code == 0, table.output
    assert "nan" in table.output and "-inf" in table.output
    shown = runner.invoke(app, ["show", run.id, "--json", "--home", str(tmp_path / "home")])
    assert shown.exit_code == 0, shown.output

    def strict(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    info = json.loads(shown.output, parse_constant=strict)
    values = {m["key"]: m["value"] for m in info["metrics"]}
    assert values == {"loss": "nan", "up": "inf", "down": "-inf", "ok": 1.0}


def test_a_store_from_before_non_finite_metrics_upgrades_and_keeps_its_points(
        fresh_url: str, tmp_path: Path) -> None:  # noqa: F811
    _alembic(fresh_url, command.upgrade, "0004")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:  # rows as the code before this change wrote them
        conn.execute(text(
            "INSERT INTO runs (id, workflow, kind, status, started_at, host, pid) "
            "VALUES ('oldrun0000000001', 'old', 'tracking', 'succeeded', 1.0, 'h', 1)"))
        conn.execute(text(
            "INSERT INTO metrics (run_id, step_name, key, value, step, timestamp) "
            "VALUES ('oldrun0000000001', '', 'loss', 0.75, 3, 1.0)"))
    engine.dispose()
    store = open_store(tmp_path / "home", url=fresh_url)  # the new code migrates on open
    try:
        client = Client(store=store)
        assert [(p["value"], p["step"]) for p in client.metrics("oldrun", "loss")] == [
            (0.75, 3)]
        with client.start_run("new") as run:
            run.log_metric("loss", math.nan)
        assert math.isnan(client.metrics(run.id, "loss")[0]["value"])
    finally:
        store.close()
