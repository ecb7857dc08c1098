"""``amml agent`` fills the label queue on its evaluations: alarms and uncertain points of the
served forecasts' live error, and drift events, each queued once; the refresh is recorded,
throttled while watching, and can be turned off."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from amml.cli.main import app
from amml.engine.agent import LABEL_QUEUE, Agent
from amml.engine.loading import compile_workflow
from amml.store import Store, open_store
from amml.store.drift_events import DriftRecords
from amml.store.labels import record_actuals, tasks
from amml.store.operations import OperationsRecords
from amml.store.prediction_log import PredictionLogTable

T0 = 1_704_067_200.0  # the data's time: 2024-01-01
STAMPS = [T0 + h * 3600 for h in range(12)]
# median 0.075, robust deviation 1.4826 x 0.15: 9 and 9.5 are an alarm, 0.85 uncertain
ERRORS = [0.1, -0.1, 0.2, -0.2, 0.0, 0.1, -0.1, 9.0, 9.5, 0.05, 0.85, -0.05]


def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "retrain.yaml"
    path.write_text("name: retrain\nsteps:\n  raw:\n    op: source.synthetic\n"
                    "    with: {periods: 50}\ntriggers:\n  - drift: oil\n")
    return path


def served_with_actuals(store: Store, received_at: float) -> None:
    """One forecast of 12 hours served at ``received_at``, and its actuals."""
    answer = {"model": "oil", "version": 1, "horizon": 12, "outputs": ["OT"],
              "forecast": {"OT": [0.0] * 12}, "timestamps": STAMPS}
    PredictionLogTable(store).append([dict(
        model="oil", version=1, endpoint="forecast", received_at=received_at,
        latency_ms=1.0, status=200, request=json.dumps({"window": [[0.0]] * 4}),
        response=json.dumps(answer))])
    record_actuals(store, "oil", [{"ts": t, "column": "OT", "value": e}
                                  for t, e in zip(STAMPS, ERRORS, strict=True)])


def drift(store: Store, at: float) -> None:
    DriftRecords(store).add_event(model="oil", version=1, detector="input-ks",
                                  detected_at=at, drift_point=at - 3600, confidence=0.99,
                                  score=2.0, threshold=1.0)


def kinds(store: Store) -> list[str]:
    return sorted(t["kind"] for t in tasks(store))


def test_each_evaluation_queues_what_is_new_once(store: Store, tmp_path: Path) -> None:
    agent = Agent(store, [compile_workflow(workflow(tmp_path))])
    served_with_actuals(store, time.time() - 60)
    drift(store, T0 + 5 * 3600)  # stamped with the data's time, years ago: still queued
    agent.run_once()
    assert kinds(store) == ["alarm", "drift", "uncertain"]
    first = agent.last_refresh
    assert first is not None and first.new == 3
    assert first.queued == {"alarm": 1, "uncertain": 1, "drift": 1}
    recorded = OperationsRecords(store).cursor(*LABEL_QUEUE)
    assert recorded["new"] == 3 and recorded["drift_event"] == 1
    assert recorded["since"] == first.at - 3600.0

    agent.run_once()  # nothing new: nothing queued twice
    assert kinds(store) == ["alarm", "drift", "uncertain"]
    assert agent.last_refresh.new == 0 and agent.last_refresh.queued["drift"] == 0

    drift(store, T0 + 2 * 3600)  # a later event dated before the first one
    agent.run_once()
    assert kinds(store) == ["alarm", "drift", "drift", "uncertain"]
    assert agent.last_refresh.new == 1
    assert OperationsRecords(store).cursor(*LABEL_QUEUE)["drift_event"] == 2


def test_answers_older_than_the_window_are_left_alone(store: Store, tmp_path: Path) -> None:
    agent = Agent(store, [compile_workflow(workflow(tmp_path))], label_window_s=600.0)
    served_with_actuals(store, time.time() - 3600)
    agent.run_once()
    assert kinds(store) == []
    assert agent.last_refresh is not None and agent.last_refresh.new == 0


def test_watching_refreshes_at_most_once_a_period(store: Store, tmp_path: Path) -> None:
    seen = []
    agent = Agent(store, [compile_workflow(workflow(tmp_path))], label_every_s=60.0,
                  on_label_refresh=seen.append)
    now = time.time()
    assert agent.refresh_labels(now) is not None
    drift(store, T0)
    assert agent.refresh_labels(now + 30.0) is None  # too soon: left for later
    assert kinds(store) == []
    later = agent.refresh_labels(now + 61.0)
    assert later is not None and later.new == 1 and kinds(store) == ["drift"]
    assert len(seen) == 2 and seen[-1] is later  # each refresh reported


def test_the_queue_can_be_turned_off(store: Store, tmp_path: Path) -> None:
    agent = Agent(store, [compile_workflow(workflow(tmp_path))], label_queue=False)
    drift(store, T0)
    agent.run_once()
    assert kinds(store) == [] and agent.last_refresh is None
    assert OperationsRecords(store).cursor(*LABEL_QUEUE) is None


def test_agent_once_fills_the_queue_unless_told_not_to(tmp_path: Path) -> None:
    path = workflow(tmp_path)
    home = tmp_path / "home"
    with open_store(home) as store:
        drift(store, T0)
    runner = CliRunner()
    off = runner.invoke(app, ["agent", str(path), "--once", "--no-label-queue", "--json",
                              "--home", str(home)])
    assert off.exit_code == 0, off.output
    with open_store(home) as store:
        assert kinds(store) == []
    on = runner.invoke(app, ["agent", str(path), "--once", "--json", "--home", str(home)])
    assert on.exit_code == 0, on.output
    assert json.loads(on.stdout)[0]["workflow"] == "retrain"  # stdout: the outcomes only
    assert "label queue: 1 new task(s) (drift 1" in on.stderr
    with open_store(home) as store:
        assert kinds(store) == ["drift"]
