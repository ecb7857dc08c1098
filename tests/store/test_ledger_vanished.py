"""``amml ledger verify`` fails when a ledger the local head witness knows has vanished or lost
entries, on SQLite and PostgreSQL; a witness of another store is not this store's business."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete
from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger
from amml.store.metadata.schema import ledger_entries
from tests.store.test_read_only import backend  # noqa: F401  (the fixture)

GONE, KEPT = "a1b2c3d4e5f60718/model", "ffeeddccbbaa0099/model"


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _two_ledgers(url: str, home: Path) -> None:
    store = open_store(home, url=url)
    try:
        for name, epochs in ((GONE, 4), (KEPT, 2)):
            ledger = Ledger(store, name, KeyRing())
            for epoch in range(epochs):
                ledger.append("epoch", epoch=epoch, checkpoint=b"%s-%d" % (name.encode(), epoch),
                              metrics={"val_loss": 1.0 / (epoch + 1)})
    finally:
        store.close()


def _delete_entries(url: str, home: Path, name: str, from_seq: int = 0) -> None:
    store = open_store(home, url=url)
    try:
        with store.metadata.engine.begin() as conn:
            conn.execute(delete(ledger_entries).where(ledger_entries.c.ledger == name,
                                                      ledger_entries.c.seq >= from_seq))
    finally:
        store.close()


def test_verify_fails_when_a_witnessed_ledger_vanished(backend: str,  # noqa: F811
                                                        tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _two_ledgers(backend, home)
    assert _invoke("ledger", "verify").exit_code == 0
    _delete_entries(backend, home, GONE)  # every entry of one ledger
    result = _invoke("ledger", "verify")
    assert result.exit_code == 1, result.output
    assert f"{GONE}: vanished" in result.output and "holds no entry" in result.output
    assert f"✓ {KEPT}" in result.output  # the other ledger is still checked and fine
    reports = {r["ledger"]: r for r in json.loads(_invoke("ledger", "verify", "--json").stdout)}
    assert reports[GONE]["ok"] is False and reports[GONE]["vanished"] is True
    assert reports[KEPT]["ok"] is True
    named = _invoke("ledger", "verify", GONE.split("/")[0])  # by its run id, too
    assert named.exit_code == 1 and "vanished" in named.output


def test_verify_fails_when_a_witnessed_ledger_lost_entries(backend: str,  # noqa: F811
                                                           tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _two_ledgers(backend, home)
    _delete_entries(backend, home, GONE, from_seq=2)  # the newest two of four
    result = _invoke("ledger", "verify")
    assert result.exit_code == 1 and GONE in result.output and "truncated" in result.output


def test_verify_fails_when_the_store_file_vanished(tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _two_ledgers(f"sqlite:///{home / 'amml.db'}", home)
    for path in home.glob("amml.db*"):
        path.unlink()
    result = _invoke("ledger", "verify")
    assert result.exit_code == 1 and f"{GONE}: vanished" in result.output
    assert not (home / "amml.db").exists()  # verifying did not create a new, empty store


def test_a_witness_of_another_store_is_not_checked_here(tmp_path: Path) -> None:
    # both stores share the user's key folder, and so its witnesses
    _two_ledgers(f"sqlite:///{tmp_path / 'a' / 'amml.db'}", tmp_path / "a")
    result = _invoke("ledger", "verify", "--home", str(tmp_path / "b"))
    assert result.exit_code == 0 and "no ledgers recorded yet" in result.output
    shared = Ledger(open_store(tmp_path / "b"), GONE, KeyRing())
    report = shared.verify()  # same name in another store: the witness is not its
    shared.store.close()
    assert report.ok and not report.witnessed
