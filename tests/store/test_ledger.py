"""The tamper-evident ledger: 100% recovery, tamper detection, concurrency, key rotation."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select, update

from amml.ops.models.torch_training import (
    TorchTrainer,
    checkpoint_bytes,
    restore_checkpoint,
    torch,
)
from amml.store import Store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger, LedgerError
from amml.store.metadata.schema import ledger_entries


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 2)) + 0.1 * rng.normal(size=(256, 2))).astype(np.float32)
    return x, y


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def _ledger(store: Store, name: str = "run-1") -> Ledger:
    return Ledger(store, name, KeyRing())


def _train(store: Store, epochs: int, name: str = "run-1", **options):
    x, y = _data()
    model = _model()
    ledger = _ledger(store, name)
    recorded: dict[int, bytes] = {}
    trainer = TorchTrainer(model, epochs=epochs, lr=1e-2, batch_size=32, ledger=ledger,
                           restore_best=False, **options)
    trainer.on_epoch = lambda epoch, _m: recorded.__setitem__(
        epoch, checkpoint_bytes(model, trainer.optimizer, {"epoch": epoch}))
    history = trainer.fit(x[:200], y[:200], x[200:], y[200:])
    return ledger, model, trainer, recorded, history


def test_fifty_epochs_fifty_random_rollbacks_all_bit_identical(store: Store) -> None:
    ledger, _, _, recorded, _ = _train(store, epochs=50)
    assert len(recorded) == 50
    rng = random.Random(7)
    restored_ok = 0
    for _ in range(50):
        epoch = rng.randrange(50)
        data, target, entry = ledger.rollback(to_epoch=epoch, reason="test")
        assert data == recorded[epoch]  # bit-identical to what was recorded
        assert hashlib.sha256(data).hexdigest() == target.checkpoint["digest"]
        assert entry.kind == "rollback" and entry.body["extra"]["target_seq"] == target.seq
        fresh = _model()
        optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-2)
        info = restore_checkpoint(data, fresh, optimizer)
        assert info == {"epoch": epoch}
        assert checkpoint_bytes(fresh, optimizer, info) == recorded[epoch]
        restored_ok += 1
    assert restored_ok == 50  # 100% recovery
    report = ledger.verify()
    assert report.ok and report.entries == 100 and report.checkpoints == 50


def test_training_resumes_from_a_rollback(store: Store) -> None:
    ledger = _train(store, epochs=6)[0]
    data, _, _ = ledger.rollback(to_epoch=2)
    model = _model()
    trainer = TorchTrainer(model, epochs=2, lr=1e-2, ledger=ledger, restore_best=False)
    restore_checkpoint(data, model, trainer.optimizer)
    x, y = _data()
    trainer.fit(x[:200], y[:200], x[200:], y[200:])
    entries = ledger.entries()
    assert [e.kind for e in entries[-3:]] == ["rollback", "epoch", "epoch"]
    assert ledger.verify().ok


def test_automatic_rollback_when_validation_loss_worsens(store: Store) -> None:
    x, y = _data()
    model = _model()
    ledger = _ledger(store, "auto")
    # a learning rate this large makes validation loss climb after the first epochs
    trainer = TorchTrainer(model, epochs=12, lr=0.5, batch_size=16, ledger=ledger,
                           rollback_patience=2, max_rollbacks=3)
    history = trainer.fit(x[:200], y[:200], x[200:], y[200:])
    rollbacks = [e for e in ledger.entries() if e.kind == "rollback"]
    assert history.rollbacks and len(rollbacks) >= len(history.rollbacks)
    assert rollbacks[0].epoch == history.rollbacks[0]["to_epoch"]
    assert rollbacks[0].body["extra"]["reason"].startswith("validation loss worse")
    assert history.rollbacks[0]["lr"] == pytest.approx(0.25)
    assert ledger.verify().ok


# -- tampering ------------------------------------------------------------------------------
def _entry_row(store: Store, seq: int, name: str = "run-1"):
    with store.metadata.engine.connect() as conn:
        return conn.execute(select(ledger_entries).where(
            ledger_entries.c.ledger == name, ledger_entries.c.seq == seq)).one()


def _update(store: Store, at: int, name: str = "run-1", **values) -> None:
    with store.metadata.engine.begin() as conn:
        conn.execute(update(ledger_entries).where(
            ledger_entries.c.ledger == name, ledger_entries.c.seq == at).values(**values))


@pytest.fixture
def trained(store: Store) -> Ledger:
    return _train(store, epochs=8)[0]


def test_modified_checkpoint_file_is_detected(store: Store, trained: Ledger) -> None:
    digest = trained.find(epoch=5).checkpoint["digest"]
    path = store.artifacts.path(digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    report = trained.verify()
    assert not report.ok and report.broken_seq == 5
    assert "epoch 5" in report.problem and "checkpoint file" in report.problem
    with pytest.raises(LedgerError, match="cannot roll back"):
        trained.rollback(to_epoch=6)
    assert trained.rollback(to_epoch=4)[1].epoch == 4  # earlier epochs still restorable


def test_missing_checkpoint_file_is_detected(store: Store, trained: Ledger) -> None:
    store.artifacts.path(trained.find(epoch=3).checkpoint["digest"]).unlink()
    store.artifacts._memo.clear()
    report = trained.verify()
    assert report.broken_seq == 3 and "missing" in report.problem


def test_edited_metrics_are_detected(store: Store, trained: Ledger) -> None:
    body = json.loads(_entry_row(store, 4).body)
    body["metrics"]["val_loss"] = 0.0001
    _update(store, 4, body=json.dumps(body, sort_keys=True, separators=(",", ":")))
    report = trained.verify()
    assert report.broken_seq == 4 and "was modified" in report.problem


def test_edited_metrics_with_recomputed_hash_fail_the_signature(store: Store,
                                                                trained: Ledger) -> None:
    body = json.loads(_entry_row(store, 4).body)
    body["metrics"]["val_loss"] = 0.0001
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    _update(store, 4, body=text, entry_hash=hashlib.sha256(text.encode()).hexdigest())
    report = trained.verify()
    assert report.broken_seq == 4 and "invalid signature" in report.problem


def test_reordered_entries_are_detected(store: Store, trained: Ledger) -> None:
    _update(store, 2, seq=1000)
    _update(store, 3, seq=2)
    _update(store, 1000, seq=3)
    report = trained.verify()
    assert report.broken_seq == 2 and "reordered" in report.problem


def test_deleted_middle_entry_is_detected(store: Store, trained: Ledger) -> None:
    with store.metadata.engine.begin() as conn:
        conn.execute(delete(ledger_entries).where(ledger_entries.c.seq == 5))
    report = trained.verify()
    assert report.broken_seq == 5 and "entry 5 is missing" in report.problem


def test_deleted_last_entry_is_caught_by_the_witness_and_the_head_file(
        store: Store, trained: Ledger, tmp_path: Path) -> None:
    head = trained.signed_head()
    with store.metadata.engine.begin() as conn:
        conn.execute(delete(ledger_entries).where(ledger_entries.c.seq == 7))
    report = trained.verify()
    assert not report.ok and "truncated" in report.problem
    trained._witness_path().unlink()  # even without the local witness ...
    assert trained.verify().ok
    report = trained.verify(against=head)  # ... the head kept elsewhere catches it
    assert not report.ok and "truncated" in report.problem and "head file" in report.problem


def test_history_rewritten_by_the_key_holder_is_caught_by_a_head_file(
        store: Store, trained: Ledger) -> None:
    head = trained.signed_head()
    with store.metadata.engine.begin() as conn:
        conn.execute(delete(ledger_entries).where(ledger_entries.c.seq >= 6))
    trained._witness_path().unlink()
    trained.append("epoch", epoch=6, checkpoint=b"forged", metrics={"val_loss": 0.0})
    trained.append("epoch", epoch=7, checkpoint=b"forged-2", metrics={"val_loss": 0.0})
    assert trained.verify().ok  # the chain alone is consistent again...
    report = trained.verify(against=head)
    assert not report.ok and "history was rewritten" in report.problem


def test_entry_forged_by_the_key_holder_breaks_the_next_link(store: Store,
                                                              trained: Ledger) -> None:
    """The key holder rewrites entry 6 (new metrics, a correct hash, a valid signature) and
    leaves entry 7 as it was. Every entry is then well-formed and validly signed, and the
    newest entry is unchanged, so a signed head still matches: only entry 7's link to
    its predecessor's hash shows the rewrite."""
    head = trained.signed_head()
    row = _entry_row(store, 6)
    body = json.loads(row.body)
    body["metrics"] = {**body["metrics"], "val_loss": 0.0001}
    forged = trained._signed(body, key_id=row.key_id, signer=trained.keyring.private(row.key_id))
    _update(store, 6, body=forged.body_text, entry_hash=forged.entry_hash,
            signature=forged.signature)
    for report in (trained.verify(), trained.verify(against=head)):
        assert not report.ok and report.broken_seq == 7
        assert "link to the previous entry is broken" in report.problem


def test_forged_head_file_is_rejected(trained: Ledger) -> None:
    head = trained.signed_head()
    head["seq"] = 3
    report = trained.verify(against=head)
    assert not report.ok and "not validly signed" in report.problem


def test_unknown_signing_key_is_reported(store: Store, trained: Ledger, tmp_path: Path) -> None:
    stranger = Ledger(store, "run-1", KeyRing(tmp_path / "other-keys"))
    report = stranger.verify()
    assert not report.ok and "unknown key" in report.problem


# -- concurrency, rotation, backends ---------------------------------------------------------
def test_concurrent_writers_cannot_fork_the_ledger(any_store: Store) -> None:
    ledger = _ledger(any_store, "shared")
    ledger.append("epoch", epoch=0, checkpoint=b"zero")

    def writer(index: int) -> None:
        own = Ledger(any_store, "shared", KeyRing())
        for step in range(10):
            own.append("round", epoch=index * 100 + step, checkpoint=f"{index}-{step}".encode())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = ledger.entries()
    assert [e.seq for e in entries] == list(range(41))
    assert len({e.prev_hash for e in entries}) == 41  # one chain, no two entries share a parent
    assert ledger.verify().ok


def test_key_rotation_is_recorded_and_verifies(store: Store) -> None:
    ring = KeyRing()
    ledger = Ledger(store, "rotating", ring)
    ledger.append("epoch", epoch=0, checkpoint=b"a")
    old, new = ring.rotate()
    ledger.append("epoch", epoch=1, checkpoint=b"b")
    kinds = [(e.kind, e.key_id) for e in ledger.entries()]
    assert kinds == [("epoch", old.key_id), ("key_rotation", old.key_id),
                     ("epoch", new.key_id)]
    (ring.folder / f"ed25519-{new.key_id}.pub").unlink()  # trusted through the hand-over
    assert ledger.verify().ok


def test_keys_are_private_to_the_owner(store: Store) -> None:
    ring = KeyRing()
    key = ring.active()
    assert (ring.folder.stat().st_mode & 0o777) == 0o700
    assert (ring.folder / f"ed25519-{key.key_id}.pem").stat().st_mode & 0o077 == 0
    assert not str(ring.folder).startswith(str(Path(store.artifacts.url[7:])))


def test_unknown_epoch_is_a_clear_error(trained: Ledger) -> None:
    with pytest.raises(LedgerError, match=r"no checkpoint for epoch 99 \(epochs recorded: 0..7\)"):
        trained.rollback(to_epoch=99)
