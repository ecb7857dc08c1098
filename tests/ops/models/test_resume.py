"""``resume_from``: the resuming run writes its own ledger (first entry: a reference to the
source entry by ledger, sequence and hash), epochs continue numbering, and the optimizer
state and learning-rate schedule continue from the checkpoint, so a resumed training's
epochs are those the uninterrupted one ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amml.ops.base import StepContext
from amml.ops.models.train import Train
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import Store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger

SETTINGS = {"model": "dlinear", "target": "temperature", "lookback": 48, "horizon": 12,
            "batch_size": 64, "device": "cpu", "patience": None, "lr": 0.01}


def _table() -> pd.DataFrame:
    frame = make_sensor_frame(periods=700, seed=2)[["temperature", "vibration", "load"]]
    return (frame - frame.mean()) / frame.std()


def _train(store: Store, keys: KeyRing, run_id: str, **config) -> tuple[StepContext, Ledger]:
    ctx = StepContext(run_id=run_id, step_name="model",
                      ledger_factory=lambda name: Ledger(store, name, keys, run_id=run_id))
    table = _table()
    Train(**{**SETTINGS, **config}).run(ctx, table.iloc[:500], table.iloc[452:600])
    return ctx, Ledger(store, f"{run_id}/model", keys)


def _epochs(ctx: StepContext) -> dict[int, dict[str, float]]:
    found: dict[int, dict[str, float]] = {}
    for point in ctx.metrics:
        if point.key in ("train_loss", "val_loss", "lr"):
            found.setdefault(point.step, {})[point.key] = point.value
    return found


@pytest.mark.parametrize("schedule", ["halve", "cosine"])
def test_resume_from_writes_its_own_ledger_and_continues_epochs_lr_and_optimizer(
        store: Store, tmp_path: Path, schedule: str) -> None:
    keys = KeyRing(tmp_path / "keys")
    full, source = _train(store, keys, "a", epochs=4, lr_schedule=schedule)
    before = [e.entry_hash for e in source.entries()]
    resumed, own = _train(store, keys, "b", epochs=2, lr_schedule=schedule,
                          resume_from="a/model@1")

    assert [e.entry_hash for e in source.entries()] == before  # the source is untouched
    entries = own.entries()
    assert [(e.kind, e.epoch) for e in entries] == [("resume", 1), ("epoch", 2), ("epoch", 3)]
    assert entries[0].resumed_from == {"ledger": "a/model", "seq": 1, "hash": before[1]}
    assert entries[0].checkpoint == source.entries()[1].checkpoint
    assert own.verify().ok

    # epochs 2 and 3 again, from epoch 1's checkpoint: the same learning rates (the schedule
    # goes on), and the same losses (weights, Adam's moments and the shuffle go on too)
    ran, again = _epochs(full), _epochs(resumed)
    assert sorted(again) == [2, 3]
    for epoch in (2, 3):
        assert again[epoch]["lr"] == pytest.approx(ran[epoch]["lr"], rel=1e-12)
        np.testing.assert_allclose([again[epoch]["train_loss"], again[epoch]["val_loss"]],
                                   [ran[epoch]["train_loss"], ran[epoch]["val_loss"]],
                                   rtol=1e-6)


def test_a_rewritten_source_entry_fails_the_resumed_ledgers_verification(
        store: Store, tmp_path: Path) -> None:
    from sqlalchemy import update

    from amml.store.metadata.schema import ledger_entries

    keys = KeyRing(tmp_path / "keys")
    _train(store, keys, "a", epochs=2, lr_schedule="constant")
    _, own = _train(store, keys, "b", epochs=1, lr_schedule="constant",
                    resume_from="a/model@1")
    with store.metadata.engine.begin() as conn:
        conn.execute(update(ledger_entries).where(ledger_entries.c.ledger == "a/model",
                                                  ledger_entries.c.seq == 1)
                     .values(entry_hash="f" * 64))
    report = own.verify()
    assert not report.ok and report.broken_seq == 0
    assert "resumes from a/model@1" in (report.problem or "")
