"""``amml agent``: triggered runs on a real store, with retries, reasons and one run at a
time per workflow."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from amml.cli.main import app
from amml.engine.agent import Agent
from amml.engine.loading import compile_workflow
from amml.store import Store, open_store
from amml.store.drift_events import DriftRecords
from amml.store.operations import OperationsRecords

CSV = "time,x\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n"


def write_workflow(tmp_path: Path, triggers: str = "  - drift: oil") -> Path:
    path = tmp_path / "retrain.yaml"
    path.write_text(f"""\
name: retrain
steps:
  raw:
    op: source.csv
    with: {{path: data.csv, time: time}}
triggers:
{triggers}
""")
    return path


def drift(store: Store) -> None:
    DriftRecords(store).add_event(model="oil", version=1, detector="error",
                                  detected_at=1.0e9, drift_point=1.0e9 - 60, confidence=0.99,
                                  score=3.0, threshold=1.0)


def test_a_drift_event_runs_the_workflow_once_with_its_reason(store: Store,
                                                               tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(CSV)
    agent = Agent(store, [compile_workflow(write_workflow(tmp_path))])
    assert [o.status for o in agent.run_once()] == ["idle"]  # first sight
    drift(store)
    [outcome] = agent.run_once()
    assert (outcome.status, outcome.attempts) == ("succeeded", 1)
    [row] = OperationsRecords(store).runs("retrain")
    assert row["status"] == "succeeded" and row["run_id"] == outcome.run_id
    assert row["reason"].startswith("drift event 1 of oil@1: error")
    assert store.metadata.get_run(outcome.run_id)["status"] == "succeeded"
    assert [o.status for o in agent.run_once()] == ["idle"]  # the event was handled


def test_a_failed_run_is_retried_with_backoff_until_it_succeeds(store: Store,
                                                                 tmp_path: Path) -> None:
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the data arrive while the agent waits
        waits.append(seconds)
        if len(waits) == 2:
            (tmp_path / "data.csv").write_text(CSV)

    agent = Agent(store, [compile_workflow(write_workflow(tmp_path))], retries=3,
                  backoff_s=0.5, sleep=wait)
    agent.run_once()
    drift(store)
    [outcome] = agent.run_once()
    assert (outcome.status, outcome.attempts) == ("succeeded", 3)
    assert waits == [0.5, 1.0]
    rows = OperationsRecords(store).runs("retrain")
    assert [(r["attempt"], r["status"]) for r in rows] == [
        (1, "failed"), (2, "failed"), (3, "succeeded")]
    assert "file not found" in rows[0]["error"]
    assert len({r["reason"] for r in rows}) == 1


def test_retries_are_bounded(store: Store, tmp_path: Path) -> None:
    waits: list[float] = []
    agent = Agent(store, [compile_workflow(write_workflow(tmp_path))], retries=2,
                  backoff_s=1.0, max_backoff_s=1.5, sleep=waits.append)
    agent.run_once()
    drift(store)
    [outcome] = agent.run_once()
    assert (outcome.status, outcome.attempts) == ("failed", 3)
    assert waits == [1.0, 1.5]
    assert [r["status"] for r in OperationsRecords(store).runs()] == ["failed"] * 3


def test_a_workflow_another_agent_runs_is_not_started_twice(store: Store,
                                                            tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(CSV)
    agent = Agent(store, [compile_workflow(write_workflow(tmp_path))])
    agent.run_once()
    drift(store)
    records = OperationsRecords(store)
    assert records.acquire("retrain", holder="other-host:1")
    [outcome] = agent.run_once()
    assert outcome.status == "busy" and records.runs() == []
    records.release("retrain", holder="other-host:1")
    [outcome] = agent.run_once()  # the trigger was kept: it fires now
    assert outcome.status == "succeeded"


def test_an_expired_lock_is_taken_over(store: Store) -> None:
    records = OperationsRecords(store)
    assert records.acquire("retrain", holder="dead:1", ttl_s=-1.0)
    assert records.acquire("retrain", holder="alive:2")
    assert not records.acquire("retrain", holder="third:3")


def test_agent_once_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(CSV)
    path = write_workflow(tmp_path, "  - drift: oil\n  - data: raw")
    home = tmp_path / "home"
    runner = CliRunner()
    first = runner.invoke(app, ["agent", str(path), "--once", "--json", "--home", str(home)])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)[0]["status"] == "idle"
    with open_store(home) as store:
        drift(store)
    with (tmp_path / "data.csv").open("a") as handle:
        handle.write("2024-01-01 02:00,3\n")
    second = runner.invoke(app, ["agent", str(path), "--once", "--json", "--home", str(home)])
    assert second.exit_code == 0, second.output
    [outcome] = json.loads(second.stdout)
    assert outcome["status"] == "succeeded" and len(outcome["reasons"]) == 2
    shown = runner.invoke(app, ["agent", "--history", "--json", "--home", str(home)])
    [row] = json.loads(shown.stdout)
    assert "drift event 1" in row["reason"] and "new data in step 'raw'" in row["reason"]


def test_a_workflow_without_triggers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nsteps:\n  raw:\n    op: source.synthetic\n"
                    "    with: {periods: 50}\n")
    result = CliRunner().invoke(app, ["agent", str(path), "--once",
                                      "--home", str(tmp_path / "h")])
    assert result.exit_code == 2 and "declares no triggers" in result.output


def test_agent_promote_applies_the_policy_after_a_triggered_run(tmp_path: Path) -> None:
    from amml.registry import ModelRegistry
    from amml.store.ledger import Ledger
    from tests.registry.cards_data import WORKFLOW, oil_frame

    oil_frame(days=30).to_csv(tmp_path / "oil.csv", index=False)
    path = tmp_path / "train.yaml"
    path.write_text(WORKFLOW.format(kind="linear") + "triggers:\n  - data: raw\n")
    home = tmp_path / "home"
    command = ["agent", str(path), "--once", "--promote", "oil", "--home", str(home),
               "-p", f"csv={tmp_path / 'oil.csv'}"]
    runner = CliRunner()
    assert runner.invoke(app, command).exit_code == 0  # first sight of the file
    oil_frame(days=31).to_csv(tmp_path / "oil.csv", index=False)  # a new day of data
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "oil: promoted (no champion yet: oil@1 becomes champion)" in result.output
    with open_store(home) as store:
        assert ModelRegistry(store).resolve("oil@champion").version == 1
        assert [e.kind for e in Ledger(store, "promotions/oil").entries()] == ["promotion"]


def test_the_agent_keeps_watching_until_stopped(store: Store, tmp_path: Path) -> None:
    import threading

    from tests.serve.conftest import wait_until

    (tmp_path / "data.csv").write_text(CSV)
    agent = Agent(store, [compile_workflow(write_workflow(tmp_path))])
    seen: list = []
    stop = threading.Event()
    thread = threading.Thread(target=agent.run_forever,
                              kwargs=dict(interval_s=0.05, stop=stop, on_outcome=seen.append))
    thread.start()
    try:
        wait_until(lambda: len(seen) >= 2)  # watching: idle evaluations
        drift(store)
        wait_until(lambda: any(o.status == "succeeded" for o in seen))
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    [row] = OperationsRecords(store).runs("retrain")  # the event ran the workflow once
    assert row["status"] == "succeeded" and row["reason"].startswith("drift event 1")
