"""The metadata store against SQLite and the real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from amml import Client, compile_workflow, run_workflow
from amml.lang import load_yaml_text
from amml.store import Store, open_store
from amml.store.metadata import MetadataStore, redact
from amml.store.metadata.schema import metadata
from amml.store.metadata.store import HEAD_REVISION, MIGRATIONS
from tests.helpers import SMALL_YAML


def test_run_records_steps_params_metrics_artifacts_and_lineage(any_store: Store) -> None:
    workflow = compile_workflow(load_yaml_text(SMALL_YAML), {"periods": 700})
    result = run_workflow(workflow, store=any_store)
    client = Client(store=any_store)
    run = client.run(result.run_id[:8])
    assert run["status"] == "succeeded" and run["params"]["periods"] == 700
    assert {s["name"]: s["status"] for s in run["steps"]} == dict.fromkeys(
        ["raw", "clean", "splits", "model", "score", "alarms"], "ran")
    keys = {(m["step_name"], m["key"]) for m in run["metrics"]}
    assert ("score", "mse") in keys and ("alarms", "alarms") in keys
    by_horizon = client.metrics(result.run_id, "mse_by_horizon")
    assert [p["step"] for p in by_horizon] == [1, 2, 3, 4, 5, 6]
    graph = client.lineage(f"{result.run_id}:score")
    producers = {i["port"]: i["produced_by"]["step"] for i in graph["inputs"]}
    assert producers == {"model": "model", "table": "splits"}
    model_input = next(i for i in graph["inputs"] if i["port"] == "model")
    assert model_input["produced_by"]["inputs"][0]["produced_by"]["step"] == "splits"
    digest = result.steps["raw"].outputs["out"].digest
    upstream = client.lineage(digest[:10])
    assert upstream["produced_by"]["step"] == "raw"
    assert {c["step"] for c in upstream["consumed_by"]} == {"clean", "alarms"}
    frame = client.load_artifact(digest[:12])
    assert len(frame) == 700


def test_thousands_of_metric_points_in_one_batch(any_store: Store) -> None:
    client = Client(store=any_store)
    with client.start_run("batch") as run:
        run.log_batch((f"m{i % 4}", float(i), i) for i in range(5000))
        for i in range(100):
            run.log_metric("one_at_a_time", i, step=i)
    assert len(client.metrics(run.id)) == 5100
    assert [p["value"] for p in client.metrics(run.id, "one_at_a_time")][-3:] == [97, 98, 99]
    assert client.run(run.id)["status"] == "succeeded"


def test_migrations_create_exactly_the_declared_schema(any_store: Store) -> None:
    with any_store.metadata.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == HEAD_REVISION
        assert compare_metadata(context, metadata) == []


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_reopening_is_idempotent(tmp_path) -> None:
    for _ in range(3):
        store = open_store(tmp_path / "s")
        store.close()
    assert (tmp_path / "s" / "amml.db").exists()


def test_store_url_passwords_are_redacted() -> None:
    assert "s3cret" not in redact("postgresql+psycopg://amml:s3cret@db.example:5432/amml")


def test_unreachable_server_gives_a_clear_error_without_credentials() -> None:
    from amml import StoreError

    with pytest.raises(StoreError) as info:
        MetadataStore("postgresql+psycopg://amml:s3cret@127.0.0.1:1/amml")
    assert "s3cret" not in str(info.value) and "127.0.0.1" in str(info.value)


def test_interrupted_runs_are_marked_on_next_start(store: Store) -> None:
    store.metadata.create_run(run_id="deadbeef00000000", workflow="w")
    from sqlalchemy import update

    from amml.store.metadata.schema import runs

    with store.metadata.engine.begin() as conn:  # pretend a dead process owned it
        conn.execute(update(runs).where(runs.c.id == "deadbeef00000000").values(pid=2**22 + 7))
    assert store.metadata.mark_interrupted() == ["deadbeef00000000"]
    assert store.metadata.get_run("deadbeef")["status"] == "interrupted"


def _concurrent_run(url: str, home: str, index: int, queue) -> None:
    try:
        os.environ["AMML_STORE_URL"] = url
        store = open_store(home)
        workflow = compile_workflow(load_yaml_text(SMALL_YAML), {"periods": 600 + index})
        result = run_workflow(workflow, store=store)
        client = Client(store=store)
        with client.start_run(f"tracker-{index}") as run:
            run.log_batch(("loss", float(i), i) for i in range(1000))
        store.close()
        queue.put((index, result.run_id, result.status))
    except BaseException as exc:  # reported to the parent test
        queue.put((index, None, repr(exc)))


def _run_concurrently(url: str, home: str, count: int) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_concurrent_run, args=(url, home, i, queue))
               for i in range(count)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert all(status == "succeeded" for _, _, status in results), results
    return results


@pytest.mark.postgres
def test_several_runs_write_concurrently_to_postgresql(pg_url: str, tmp_path) -> None:
    results = _run_concurrently(pg_url, str(tmp_path / "home"), 4)
    store = open_store(tmp_path / "home", url=pg_url)
    client = Client(store=store)
    for _, run_id, _ in results:
        assert len(client.run(run_id)["steps"]) == 6
    trackers = client.runs(limit=200)
    assert sum(1 for r in trackers if r["workflow"].startswith("tracker-")) >= 4
    store.close()


def test_concurrent_sqlite_runs_share_one_store(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    results = _run_concurrently(url, str(tmp_path / "home"), 3)
    store = open_store(tmp_path / "home", url=url)
    assert {r["id"] for r in store.metadata.list_runs(limit=50)} >= {r[1] for r in results}
    store.close()
