"""Ledger entries carry the code version inside the signed body; entries written before that
field existed still verify."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from amml import Client, run_workflow
from amml.engine.task import _ledger_factory
from amml.store import Store
from amml.store.code_version import CodeVersion
from amml.store.keys import KeyRing
from amml.store.ledger import GENESIS, Ledger
from amml.store.metadata.schema import ledger_entries

RUN_VERSION = CodeVersion("d" * 64, "c" * 40, True, "0.1.0")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "test@example.com")
    _git(path, "config", "user.name", "Test")
    for name, content in files.items():
        (path / name).write_text(content)
    _git(path, "add", *files)
    _git(path, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
    return path


def _old_entry(ledger: Ledger, seq: int, prev: str, epoch: int) -> None:
    """An epoch entry exactly as the ledger wrote it before code versions: no such field."""
    key = ledger.keyring.active()
    checkpoint = b"old-weights-%d" % epoch
    digest = ledger.store.artifacts.put_bytes(checkpoint)
    body = {"kind": "epoch", "epoch": epoch, "checkpoint": {"digest": digest,
                                                             "size": len(checkpoint)},
            "metrics": {"val_loss": 1.0 / (epoch + 1)}, "ledger": ledger.name, "seq": seq,
            "prev": prev, "time": time.time(), "key_id": key.key_id}
    ledger._insert(ledger._signed(body, key_id=key.key_id, signer=key))


def test_old_entries_still_verify_and_new_ones_carry_the_code_version(store: Store) -> None:
    store.metadata.create_run(run_id="trainrun", workflow="w", code_version=RUN_VERSION)
    ledger = Ledger(store, "trainrun/model", KeyRing(), run_id="trainrun")
    _old_entry(ledger, 0, GENESIS, 0)
    _old_entry(ledger, 1, ledger.head().entry_hash, 1)
    assert ledger.verify().ok  # a ledger from before the change, untouched
    new = ledger.append("epoch", epoch=2, checkpoint=b"new-weights", metrics={"val_loss": 0.2})
    _, _, rollback = ledger.rollback(to_epoch=1, reason="worse")
    report = ledger.verify()
    assert report.ok, report.problem
    assert report.entries == 4 and report.checkpoints == 3
    old = ledger.entries()[0]
    assert "code_version" not in old.body and old.code_version is None
    assert new.code_version == rollback.code_version == RUN_VERSION
    assert new.body["code_version"] == RUN_VERSION.to_json()


def test_the_code_version_is_signed(store: Store) -> None:
    store.metadata.create_run(run_id="trainrun", workflow="w", code_version=RUN_VERSION)
    ledger = Ledger(store, "trainrun/model", KeyRing(), run_id="trainrun")
    for epoch in range(3):
        ledger.append("epoch", epoch=epoch, checkpoint=b"w%d" % epoch)
    entry = ledger.entries()[1]
    forged = entry.body
    forged["code_version"]["dirty"] = False  # pretend the tree was clean
    forged_text = json.dumps(forged, sort_keys=True, separators=(",", ":"))

    def rewrite(**values: str) -> None:
        with store.metadata.engine.begin() as conn:
            conn.execute(update(ledger_entries).where(
                ledger_entries.c.ledger == ledger.name, ledger_entries.c.seq == 1)
                .values(**values))

    rewrite(body=forged_text)
    report = ledger.verify()
    assert not report.ok and report.broken_seq == 1 and "was modified" in report.problem
    rewrite(entry_hash=hashlib.sha256(forged_text.encode()).hexdigest())
    report = ledger.verify()
    assert not report.ok and "invalid signature" in report.problem


def test_the_appending_run_counts_not_the_ledger_name(store: Store) -> None:
    """Resuming training appends to another run's ledger: the entries name the code that
    appended them."""
    store.metadata.create_run(run_id="first", workflow="w",
                              code_version=CodeVersion("1" * 64, "a" * 40, False, "0.1.0"))
    store.metadata.create_run(run_id="resumer", workflow="w", code_version=RUN_VERSION)
    open_ledger = _ledger_factory(store, "resumer")
    entry = open_ledger("first/model").append("epoch", epoch=5, checkpoint=b"w")
    assert entry.code_version == RUN_VERSION
    assert Ledger(store, "first/model", run_id="resumer").code_version() == RUN_VERSION


def test_without_a_run_the_current_folders_git_state_is_recorded(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo", {"train.py": "print(1)\n"})
    monkeypatch.chdir(repo)
    entry = Ledger(store, "by-hand").append("epoch", epoch=0, checkpoint=b"w")
    assert entry.code_version.commit == _git(repo, "rev-parse", "HEAD")
    assert entry.code_version.dirty is False and entry.code_version.workflow_digest is None


def test_workflow_training_writes_the_runs_code_version_into_its_ledger(
        any_store: Store, tmp_path: Path) -> None:
    from tests.registry.test_register_op import FLOW

    repo = _repo(tmp_path / "repo", {"flow.yaml": FLOW.replace("model: naive", "model: nlinear")
                                     .replace("epochs: 1", "epochs: 2")})
    result = run_workflow(repo / "flow.yaml", store=any_store)
    expected = Client(store=any_store).run(result.run_id)["code_version"]
    assert expected["commit"] == _git(repo, "rev-parse", "HEAD") and expected["dirty"] is False
    with any_store.metadata.engine.connect() as conn:
        bodies = conn.execute(select(ledger_entries.c.body).where(
            ledger_entries.c.ledger == f"{result.run_id}/model")).scalars().all()
    assert len(bodies) == 2
    assert all(json.loads(b)["code_version"] == expected for b in bodies)
    assert Ledger(any_store, f"{result.run_id}/model").verify().ok
