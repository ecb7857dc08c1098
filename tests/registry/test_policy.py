"""The promotion policy on a real store: the recent labelled window and the test split, the
guards (points, card checks, test tolerance), the compare-and-set move and the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from amml.registry import ModelRegistry
from amml.registry.policy import PromotionPolicy, apply, decide
from amml.store import Store
from amml.store.labels import record_actuals
from amml.store.ledger import Ledger
from amml.store.operations import OperationsRecords
from amml.store.prediction_log import PredictionLogTable
from tests.registry.cards_data import oil_frame, register_version

LOOKBACK, HORIZON = 24, 6


def serve_log(store: Store, frame, windows: int, version: int = 1) -> None:
    """``windows`` forecast requests over ``frame`` as the server logs them, and the actuals
    of their forecast times as a client posts them later."""
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in frame["time"]]
    values = frame["OT"].to_numpy()
    rows, actuals = [], []
    for i in range(windows):
        start = i * HORIZON
        window = values[start:start + LOOKBACK]
        ahead = range(start + LOOKBACK, start + LOOKBACK + HORIZON)
        body = {"window": [[float(v)] for v in window], "columns": ["OT"],
                "timestamps": stamps[start:start + LOOKBACK]}
        answer = {"model": "oil", "version": version, "horizon": HORIZON, "outputs": ["OT"],
                  "forecast": {"OT": [float(window[-1])] * HORIZON},
                  "timestamps": [stamps[j] for j in ahead]}
        rows.append(dict(model="oil", version=version, endpoint="forecast",
                         received_at=1000.0 + i, latency_ms=1.0, status=200,
                         request=json.dumps(body), response=json.dumps(answer)))
        actuals += [{"ts": stamps[j], "column": "OT", "value": float(values[j])}
                    for j in ahead]
    PredictionLogTable(store).append(rows)
    record_actuals(store, "oil", actuals)


@pytest.fixture
def drifted(store: Store, tmp_path: Path):
    """oil@1 champion fitted to a daily cycle; oil@2 challenger fitted to the 12-hour cycle
    the series has drifted to; the drifted data the service answered since."""
    register_version(store, tmp_path / "v1", frame=oil_frame(days=40))
    ModelRegistry(store).set_alias("oil", "champion", 1)
    register_version(store, tmp_path / "v2", frame=oil_frame(days=40, period=12))
    return oil_frame(days=10, period=12, seed=2, start="2025-06-01")


def test_a_better_challenger_is_promoted_with_a_signed_ledger_entry(store: Store,
                                                                    drifted) -> None:
    serve_log(store, drifted, windows=20)  # 20 x 6 = 120 labelled points
    decision = apply(store, "oil", actor="ops")
    assert decision.promoted, decision.reason
    live = decision.evidence["live"]
    assert live["points"] == 120 and live["candidate_mse"] < live["champion_mse"] / 4
    assert ModelRegistry(store).resolve("oil@champion").version == 2
    ledger = Ledger(store, "promotions/oil")
    [entry] = ledger.entries()
    assert entry.kind == "promotion" and (decision.ledger_seq, decision.ledger_hash) == (
        entry.seq, entry.entry_hash)
    assert entry.body["extra"]["from_version"] == 1 and entry.body["extra"]["to_version"] == 2
    assert entry.metrics["live_points"] == 120 and ledger.verify().ok
    [event] = [e for e in ModelRegistry(store).alias_history("oil", "champion")
               if e["to_version"] == 2]
    assert event["actor"] == "ops" and event["reason"].startswith("policy: oil@2 beats oil@1")
    [recorded] = OperationsRecords(store).decisions("oil")
    assert recorded["promoted"] and recorded["ledger_seq"] == 0
    assert apply(store, "oil").reason == "oil@2 already is champion"
    from amml.registry.cards import build_card

    [on_card] = build_card(store, "oil@2", plots=False).ledgers
    assert on_card["promotion"]["seq"] == 0 and on_card["promotion"]["actor"] == "ops"
    assert on_card["promotion"]["reason"] == decision.reason


def test_too_few_labelled_points_refuse(store: Store, drifted) -> None:
    serve_log(store, drifted, windows=5)  # 30 points
    decision = apply(store, "oil", policy=PromotionPolicy(min_points=50))
    assert not decision.promoted
    assert decision.reason.startswith("only 30 labelled forecast points")
    assert ModelRegistry(store).resolve("oil@champion").version == 1
    assert Ledger(store, "promotions/oil").entries() == []
    [recorded] = OperationsRecords(store).decisions("oil")
    assert not recorded["promoted"] and recorded["evidence"]["live"]["points"] == 30
    assert apply(store, "oil", policy=PromotionPolicy(min_points=30)).promoted


def test_a_version_whose_card_failed_a_check_is_never_promoted(store: Store, drifted,
                                                               tmp_path: Path) -> None:
    serve_log(store, drifted, windows=20)
    register_version(store, tmp_path / "v3",
                     frame=oil_frame(days=40, period=12, noisy_station=3.0))  # oil@3
    ModelRegistry(store).set_alias("oil", "challenger", 3)
    decision = decide(store, "oil")
    assert not decision.promoted
    assert decision.reason.startswith("the card of oil@3 has failed checks: no station id")
    unguarded = decide(store, "oil", policy=PromotionPolicy(require_card=False))
    assert unguarded.reason.startswith("test split")  # judged on, and refused by, the rest


def test_a_candidate_much_worse_on_the_test_split_is_refused(store: Store, drifted) -> None:
    serve_log(store, drifted, windows=20)
    registry = ModelRegistry(store)
    v1, v2 = registry.get("oil", 1), registry.get("oil", 2)
    worse = dict(v2.metrics, mse=v1.metrics["mse"] * 1.5)
    registry.register("oil", registry.load(v2), metrics=worse, signature=v2.signature)
    registry.set_alias("oil", "challenger", 3)
    decision = decide(store, "oil", policy=PromotionPolicy(require_card=False))
    assert not decision.promoted and decision.reason.startswith("test split: mse")
    assert "+ 10%" in decision.reason
    lenient = PromotionPolicy(require_card=False, test_tolerance=0.6)
    assert decide(store, "oil", policy=lenient).promoted


def test_a_worse_challenger_on_live_data_stays_a_challenger(store: Store, tmp_path: Path
                                                           ) -> None:
    register_version(store, tmp_path / "v1", frame=oil_frame(days=40))
    ModelRegistry(store).set_alias("oil", "champion", 1)
    register_version(store, tmp_path / "v2", frame=oil_frame(days=40, period=12))
    serve_log(store, oil_frame(days=10, seed=3, start="2025-06-01"), windows=20)  # no drift
    decision = apply(store, "oil", policy=PromotionPolicy(test_tolerance=5.0))
    assert not decision.promoted and "does not beat" in decision.reason
    assert np.isfinite(decision.evidence["live"]["champion_mse"])


def test_without_a_champion_the_first_passing_candidate_is_promoted(store: Store,
                                                                    tmp_path: Path) -> None:
    register_version(store, tmp_path / "v1")
    decision = apply(store, "oil")
    assert decision.promoted and decision.reason == "no champion yet: oil@1 becomes champion"
    assert ModelRegistry(store).resolve("oil@champion").version == 1


def test_amml_models_policy_on_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from amml.cli.main import app
    from amml.store import open_store

    home = tmp_path / "home"
    with open_store(home) as store:
        register_version(store, tmp_path / "v1", frame=oil_frame(days=40))
        ModelRegistry(store).set_alias("oil", "champion", 1)
        register_version(store, tmp_path / "v2", frame=oil_frame(days=40, period=12))
        serve_log(store, oil_frame(days=10, period=12, seed=2, start="2025-06-01"), 5)
    runner = CliRunner()
    refused = runner.invoke(app, ["models", "policy", "oil", "--home", str(home)])
    assert refused.exit_code == 1 and "only 30 labelled forecast points" in refused.output
    dry = runner.invoke(app, ["models", "policy", "oil", "--min-points", "30", "--dry-run",
                              "--home", str(home)])
    assert dry.exit_code == 0 and "would promote oil@2" in dry.output
    done = runner.invoke(app, ["models", "policy", "oil", "--min-points", "30", "--json",
                               "--home", str(home)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["ledger"] == "promotions/oil"
    with open_store(home) as store:
        assert ModelRegistry(store).resolve("oil@champion").version == 2
