"""The operations example's loop through its real parts, without the network ones: the
bootstrap workflow makes a champion, the test application serves it while a client sends the
drifted feed and its actuals, a drift event (as ``amml monitor`` records it) fires the
retrain workflow in the agent, the policy promotes the challenger (a ledger entry) and the
server swaps without a failed request. ``benchmarks/operations.py`` runs the whole of it
live, with MQTT, ``amml serve``, ``amml monitor`` and ``amml agent`` as processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

from amml.engine.agent import Agent
from amml.engine.loading import compile_workflow
from amml.registry import ModelRegistry
from amml.registry.policy import PromotionPolicy, apply
from amml.serve import ServeConfig
from amml.serve.app import create_app
from amml.store import open_store
from amml.store.drift_events import DriftRecords
from amml.store.ledger import Ledger
from tests.serve.conftest import wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "operations"
sys.path.insert(0, str(EXAMPLE))

from loop import MODEL, Feed, bootstrap  # noqa: E402
from stream import series  # noqa: E402


def test_drift_retrain_promote_swap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bootstrap(home, history_hours=600)
    config = ServeConfig(models=[f"{MODEL}@champion"], home=str(home), auth=False,
                         poll_interval=0.05, log_flush_interval=0.05)
    with TestClient(create_app(config)) as client, open_store(home) as store:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        retrain = compile_workflow(EXAMPLE / "retrain.yaml", {"recent": "-3600s"})
        assert [t.kind for t in retrain.ir.triggers] == ["drift"]
        agent = Agent(store, [retrain], on_success=lambda *_: apply(
            store, MODEL, policy=PromotionPolicy(min_points=50), actor="agent").reason)
        assert agent.run_once()[0].status == "idle"  # watching from now
        feed = Feed(client)
        drifted = series(240, drift_at=600, first=600, seed=7)  # the new regime throughout
        for stamp, value in zip(drifted["date"], drifted["OT"], strict=True):
            feed.add(stamp.isoformat(), float(value))
        feed.flush()
        assert [v for _, v in feed.versions] == [1]
        DriftRecords(store).add_event(model=MODEL, version=1, detector="input-ks",
                                      detected_at=drifted["date"].iloc[-1].timestamp(),
                                      drift_point=drifted["date"].iloc[0].timestamp(),
                                      confidence=1.0, score=0.9, threshold=0.3)
        assert agent.run_once()[0].status == "idle"  # waits for the new regime's data
        [outcome] = agent.run_once(now=time.time() + 60)
        assert outcome.status == "succeeded", outcome.error
        assert outcome.note.startswith("oil-ops@2 beats oil-ops@1 on the recent labelled")
        wait_until(lambda: feed.forecast() == 2)
        assert feed.failed == 0
        registry = ModelRegistry(store)
        assert registry.resolve(f"{MODEL}@champion").version == 2
        assert [e.body["extra"]["to_version"] for e in
                Ledger(store, f"promotions/{MODEL}").entries()] == [1, 2]
        assert registry.get(MODEL, 2).run_id == outcome.run_id


def test_the_python_retrain_workflow_is_the_yaml_one() -> None:
    from_yaml = compile_workflow(EXAMPLE / "retrain.yaml")
    from_python = compile_workflow(EXAMPLE / "retrain.py")
    assert from_python.ir.canonical_json() == from_yaml.ir.canonical_json()
    assert from_yaml.ir.triggers[0].with_ == {"model": MODEL, "alias": "champion",
                                              "wait_s": 45}
