"""The ledger rule by rule, on small byte checkpoints (no training): what an entry records,
what verification says for each kind of damage, witnesses, heads, checkpoints by sequence,
resumes and store identities. ``test_ledger.py`` runs the same rules through real training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from amml.store import Store, open_store
from amml.store.keys import KeyRing
from amml.store.ledger import (
    KINDS,
    Ledger,
    LedgerError,
    VerifyReport,
    canonical_body,
    store_identity,
)
from amml.store.metadata.schema import ledger_entries
from tests.store.test_ledger import _entry_row as _row
from tests.store.test_ledger import _update


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path / "keys")


def _three_epochs(store: Store, keys: KeyRing, name: str = "run-1") -> Ledger:
    ledger = Ledger(store, name, keys)
    for epoch in range(3):
        ledger.append("epoch", epoch=epoch, checkpoint=b"weights-%d" % epoch,
                      metrics={"val_loss": 1.0 / (epoch + 1)})
    return ledger


def _rehashed(body: dict) -> dict:
    text = canonical_body(body)
    return {"body": text, "entry_hash": hashlib.sha256(text.encode()).hexdigest()}


# ---------------------------------------------------------------- entries
def test_canonical_bodies_hold_only_finite_json() -> None:
    body = {"b": float("nan"), "a": [np.float32(0.5), (1, float("inf"))], 3: np.int64(7)}
    assert canonical_body(body) == '{"3":7,"a":[0.5,[1,null]],"b":null}'


def test_an_entry_records_what_was_given_and_nothing_else(store: Store, keys: KeyRing) -> None:
    ledger = Ledger(store, "run-1", keys)
    entry = ledger.append("epoch", epoch=np.int64(2), checkpoint=b"abc",
                          metrics={"val_loss": 0.5}, config_digest="c" * 8,
                          data_digest="d" * 8, extra={"note": "x"})
    body = entry.body
    assert body["epoch"] == 2 and isinstance(body["epoch"], int)
    assert body["checkpoint"] == {"digest": hashlib.sha256(b"abc").hexdigest(), "size": 3}
    assert (body["config_digest"], body["data_digest"]) == ("c" * 8, "d" * 8)
    assert "code_digest" not in body
    assert body["extra"] == {"note": "x"}
    assert (entry.epoch, entry.metrics, entry.checkpoint) == (2, {"val_loss": 0.5},
                                                              body["checkpoint"])
    assert entry.resumed_from is None and entry.code_version is not None
    bare = ledger.append("promotion")
    assert "epoch" not in bare.body and "checkpoint" not in bare.body
    assert "extra" not in bare.body and bare.metrics == {} and bare.epoch is None
    assert bare.checkpoint is None and bare.prev_hash == entry.entry_hash and bare.seq == 1


def test_names_and_kinds_are_checked(store: Store, keys: KeyRing) -> None:
    with pytest.raises(LedgerError, match="a ledger needs a name"):
        Ledger(store, "", keys)
    with pytest.raises(LedgerError) as caught:
        Ledger(store, "run-1", keys).append("weights")
    assert str(caught.value) == (f"unknown ledger entry kind 'weights' (known: "
                                 f"{', '.join(KINDS)})")


def test_names_lists_each_ledger_once_in_order(store: Store, keys: KeyRing) -> None:
    _three_epochs(store, keys, "b-run")
    _three_epochs(store, keys, "a-run")
    assert Ledger.names(store) == ["a-run", "b-run"]


# ---------------------------------------------------------------- verification
def test_a_clean_ledger_reports_what_it_checked(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    report = ledger.verify()
    assert report.to_json() == {
        "ledger": "run-1", "ok": True, "entries": 3, "checkpoints": 3,
        "bytes_checked": 3 * len(b"weights-0"), "broken_seq": None, "problem": None,
        "head": [2, ledger.head().entry_hash], "witnessed": True, "vanished": False}
    assert ledger.verify(check_checkpoints=False).checkpoints == 0
    partial = ledger.verify(upto_seq=1)
    assert (partial.entries, partial.head, partial.witnessed) == (
        2, (1, ledger.entries()[1].entry_hash), False)


def test_an_edited_body_is_described(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    body = json.loads(_row(store, 1).body)
    body["metrics"]["val_loss"] = 0.01
    _update(store, 1, body=canonical_body(body))
    problem = ledger.verify().problem
    assert problem.startswith("entry 1 (epoch, epoch 1) was modified: its content hashes to ")
    assert problem.endswith("; current metrics: {'val_loss': 0.01}")
    _update(store, 1, body=json.dumps(body, indent=1))
    assert ledger.verify().problem.endswith(" (the stored body is not in canonical form)")
    _update(store, 1, body="{not json")
    recorded = _row(store, 1).entry_hash
    problem = ledger.verify().problem
    assert problem.startswith("entry 1 (epoch) was modified: its content hashes to ")
    assert problem.endswith(f", recorded {recorded[:12]}")  # nothing to describe


def test_a_body_that_no_longer_parses_is_named(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    text = "{not json"
    _update(store, 2, body=text, entry_hash=hashlib.sha256(text.encode()).hexdigest())
    report = ledger.verify()
    assert (report.broken_seq, report.problem) == (2, "entry 2: body is not valid JSON")


def test_an_entry_moved_from_another_ledger_or_seq_is_named(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    body = json.loads(_row(store, 1).body)
    _update(store, 1, **_rehashed({**body, "ledger": "other-run"}))
    assert ledger.verify().problem == ("entry 1: its body says ledger 'other-run' entry 1 "
                                       "(entries were reordered or moved)")
    _update(store, 1, **_rehashed({**body, "seq": 5}))
    assert ledger.verify().problem == ("entry 1: its body says ledger 'run-1' entry 5 "
                                       "(entries were reordered or moved)")


def test_columns_must_agree_with_the_signed_body(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    _update(store, 1, kind="rollback")
    assert ledger.verify().problem == "entry 1: columns disagree with the signed body"


def test_a_gap_names_the_missing_entry(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    _update(store, 2, seq=3)
    report = ledger.verify(upto_seq=5)
    assert report.broken_seq == 2
    assert report.problem == ("entry 2 is missing: the ledger jumps from entry 1 to entry 3 "
                              "(an entry was deleted)")


def test_an_unknown_key_says_how_to_trust_it(store: Store, keys: KeyRing,
                                            tmp_path: Path) -> None:
    _three_epochs(store, keys)
    stranger = Ledger(store, "run-1", KeyRing(tmp_path / "other-keys"))
    report = stranger.verify(upto_seq=2)
    key_id = _row(store, 0).key_id
    assert report.problem == (f"entry 0 is signed by unknown key {key_id}; trust it with "
                              "'amml ledger trust PUBLIC_KEY' if it is yours")


# ---------------------------------------------------------------- witnesses and heads
def test_witnesses_name_their_store(store: Store, keys: KeyRing, tmp_path: Path) -> None:
    _three_epochs(store, keys, "run/1 a")
    assert (keys.folder / "heads" / "run_1_a.json").exists()
    other = open_store(tmp_path / "other-store")
    _three_epochs(other, keys, "elsewhere")
    (keys.folder / "heads" / "broken.json").write_text("{not json")
    (keys.folder / "heads" / "list.json").write_text("[1, 2]")
    assert Ledger.witnessed(store, keys) == ["run/1 a"]
    assert Ledger.witnessed(other, keys) == ["elsewhere"]
    assert Ledger.witnessed(store, KeyRing(tmp_path / "no-keys")) == []
    other.close()


def test_a_signed_head_catches_truncation_and_names_its_ledger(store: Store, keys: KeyRing
                                                               ) -> None:
    with pytest.raises(LedgerError, match="ledger 'run-1' is empty"):
        Ledger(store, "run-1", keys).signed_head()
    ledger = _three_epochs(store, keys)
    head = ledger.signed_head()
    assert {k: head[k] for k in ("ledger", "seq", "hash")} == {
        "ledger": "run-1", "seq": 2, "hash": ledger.head().entry_hash}
    assert ledger.verify(against=head).ok
    wrong = Ledger(store, "run-2", keys)
    wrong.append("epoch", epoch=0, checkpoint=b"w")
    assert wrong.verify(against=head).problem == (
        "the head file is for ledger 'run-1', not 'run-2'")
    tampered = {**head, "seq": 1}
    assert ledger.verify(against=tampered).problem == (
        "the head file is not validly signed by a trusted key")


# ---------------------------------------------------------------- checkpoints by sequence
def test_find_and_checkpoint_at(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    ledger.append("promotion")
    assert ledger.find(seq=1).epoch == 1
    data, entry = ledger.checkpoint_at(2)
    assert (data, entry.seq) == (b"weights-2", 2)
    with pytest.raises(LedgerError, match=r"^entry 3 of ledger 'run-1' has no checkpoint$"):
        ledger.checkpoint_at(3)
    with pytest.raises(LedgerError, match=r"no checkpoint for entry 9 \(epochs recorded: 0..2\)"):
        ledger.find(seq=9)
    with pytest.raises(LedgerError, match=r"no checkpoint for epoch 0 \(epochs recorded: none\)"):
        Ledger(store, "empty", keys).find(epoch=0)
    _update(store, 1, kind="rollback")
    with pytest.raises(LedgerError, match=r"ledger 'run-1' is broken: entry 1: columns"):
        ledger.checkpoint_at(2)


def test_a_rollback_entry_points_at_its_target(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    data, target, entry = ledger.rollback(to_epoch=1, reason="val loss rose")
    assert (data, target.seq, entry.kind, entry.epoch) == (b"weights-1", 1, "rollback", 1)
    assert entry.body["extra"] == {"target_seq": 1, "target_hash": target.entry_hash,
                                   "reason": "val loss rose"}
    assert entry.checkpoint == target.checkpoint and entry.metrics == target.metrics
    assert ledger.find(epoch=1).seq == 1  # a rollback is not an epoch to restore
    report = ledger.verify()
    assert report.ok and report.checkpoints == 3  # the rollback's checkpoint is its target's


# ---------------------------------------------------------------- resumes
def test_a_resume_names_its_source_and_verify_checks_it(store: Store, keys: KeyRing,
                                                       tmp_path: Path) -> None:
    source = _three_epochs(store, keys)
    with pytest.raises(LedgerError,
                       match=r"^entry 3 of ledger 'run-1' has no checkpoint to resume from$"):
        Ledger(store, "run-2", keys).record_resume(source, source.append("promotion"))
    resumed = Ledger(store, "run-3", keys)
    entry = resumed.record_resume(source, source.find(epoch=1))
    assert entry.kind == "resume" and entry.epoch == 1
    assert entry.resumed_from == {"ledger": "run-1", "seq": 1,
                                  "hash": source.find(epoch=1).entry_hash}
    assert resumed.find(epoch=1).seq == 0  # a resume entry is a restorable checkpoint
    assert resumed.verify().ok
    _update(store, 1, entry_hash="0" * 64)  # the source entry rewritten
    problem = resumed.verify().problem
    assert problem.startswith("entry 0 resumes from run-1@1 with hash ")
    assert problem.endswith("0000000000: the source ledger was rewritten")

    elsewhere = open_store(tmp_path / "exported")
    copy = Ledger(elsewhere, "run-3", keys)
    with elsewhere.metadata.engine.begin() as conn:
        conn.execute(ledger_entries.insert(), [dict(_row(store, 0, "run-3")._mapping)])
    elsewhere.artifacts.put_bytes(b"weights-1")
    report = copy.verify()
    assert report.ok and report.notes == [
        "entry 0 resumes from run-1@1, which this store does not hold"]
    elsewhere.close()


# ---------------------------------------------------------------- identities
def test_store_identity_names_the_file_or_the_server(store: Store, pg_url: str,
                                                     tmp_path: Path) -> None:
    path = store.metadata._sqlite_path.resolve()
    assert store_identity(store) == f"sqlite:{path}"
    server = open_store(tmp_path / "pg", url=pg_url)
    url = make_url(pg_url)
    assert store_identity(server) == (f"postgresql://{url.username or ''}@"
                                      f"{(url.host or '').lower()}:{url.port or 5432}/"
                                      f"{url.database}")
    assert "password" not in store_identity(server)
    server.close()


def test_verify_report_fail_keeps_the_first_problem() -> None:
    report = VerifyReport("x").fail(3, "broken")
    assert (report.ok, report.broken_seq, report.problem) == (False, 3, "broken")


# ---------------------------------------------------------------- more restore paths
def test_rollback_by_sequence_and_checkpoints_of_rounds_and_repeats(store: Store,
                                                                    keys: KeyRing) -> None:
    ledger = Ledger(store, "fed", keys)
    ledger.append("round", epoch=0, checkpoint=b"global-0")
    ledger.append("round", epoch=1, checkpoint=b"global-1")
    ledger.append("round", epoch=1, checkpoint=b"global-1-again")  # a repeated round
    assert ledger.find(epoch=0).kind == "round"
    assert ledger.find(epoch=1).seq == 2  # the newest checkpoint of that epoch
    data, target, entry = ledger.rollback(seq=1)
    assert (data, target.seq, entry.body["extra"]["target_seq"]) == (b"global-1", 1, 1)
    assert entry.body["extra"]["reason"] == ""


def test_checkpoint_at_verifies_only_up_to_its_entry(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    _update(store, 2, kind="rollback")  # damage after the entry asked for
    assert ledger.checkpoint_at(1)[0] == b"weights-1"
    assert not ledger.verify().ok


def test_a_resume_carries_its_sources_metrics(store: Store, keys: KeyRing) -> None:
    source = _three_epochs(store, keys)
    entry = Ledger(store, "run-2", keys).record_resume(source, source.find(epoch=2))
    assert entry.metrics == {"val_loss": 1.0 / 3}


def test_an_edited_entry_without_epoch_or_metrics_is_described_plainly(store: Store,
                                                                       keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    ledger.append("promotion", extra={"to": 2})
    body = json.loads(_row(store, 3).body)
    body["extra"]["to"] = 3
    _update(store, 3, body=canonical_body(body))
    recorded = _row(store, 3).entry_hash
    problem = ledger.verify().problem
    assert problem.startswith("entry 3 (promotion) was modified: its content hashes to ")
    assert problem.endswith(f", recorded {recorded[:12]}")


def test_two_key_rotations_each_vouched_by_the_key_before(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    keys.rotate()
    ledger.append("epoch", epoch=3, checkpoint=b"weights-3")
    keys.rotate()
    ledger.append("epoch", epoch=4, checkpoint=b"weights-4")
    kinds = [e.kind for e in ledger.entries()]
    assert kinds == ["epoch"] * 3 + ["key_rotation", "epoch", "key_rotation", "epoch"]
    first, second = (e for e in ledger.entries() if e.kind == "key_rotation")
    assert second.key_id == first.body["new_key_id"]  # signed by the key the first vouched for
    assert first.metrics == {} and second.metrics == {}
    assert ledger.verify().ok


# ---------------------------------------------------------------- every message, exactly
def test_head_is_the_last_entry_field_for_field(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    assert ledger.head() == ledger.entries()[-1]
    assert [e.ledger for e in ledger.entries()] == ["run-1"] * 3
    assert Ledger(store, "none", keys).head() is None


def test_a_broken_link_names_both_hashes(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    expected = _row(store, 0).entry_hash
    body = json.loads(_row(store, 1).body)
    _update(store, 1, prev_hash="f" * 64, **_rehashed({**body, "prev": "f" * 64}))
    assert ledger.verify().problem == (
        f"entry 1: link to the previous entry is broken (expected {expected[:12]}, found "
        "ffffffffffff); entries were reordered, inserted or removed")


def test_an_altered_signature_is_named(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    row = _row(store, 1)
    _update(store, 1, signature=_row(store, 2).signature)
    assert ledger.verify().problem == (f"entry 1: invalid signature (key {row.key_id}); the "
                                       "entry hash or signature was altered")


def test_checkpoint_damage_is_named_with_where_it_went(store: Store, keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    digest = ledger.find(epoch=1).checkpoint["digest"]
    store.artifacts.path(digest).write_bytes(b"weights-X")
    store.artifacts._memo.clear()
    problem = ledger.verify().problem
    prefix = (f"entry 1 (epoch, epoch 1): checkpoint file {digest[:12]} was modified (its bytes "
              "no longer hash to it; moved aside to ")
    assert problem.startswith(prefix) and problem.endswith(")")
    assert Path(problem[len(prefix):-1]).read_bytes() == b"weights-X"
    assert ledger.verify().problem == (f"entry 1 (epoch, epoch 1): checkpoint {digest[:12]} is "
                                       "missing from the artifact store")


def test_truncation_rewriting_and_vanishing_against_the_heads(store: Store,
                                                             keys: KeyRing) -> None:
    ledger = _three_epochs(store, keys)
    head = ledger.signed_head()
    last = _row(store, 2)
    with store.metadata.engine.begin() as conn:
        conn.execute(ledger_entries.delete().where(ledger_entries.c.seq == 2))
    report = ledger.verify(against=head)
    assert (report.broken_seq, report.problem) == (2, (
        "the ledger was truncated: the local witness head records entry 2, but the ledger "
        "ends at entry 1"))
    rewritten = ledger.append("epoch", epoch=2, checkpoint=b"other weights")  # key holder
    assert ledger.verify().ok  # the witness moved with the rewrite; the head file did not
    assert ledger.verify(against=head).problem == (
        f"entry 2 differs from the head file (hash {rewritten.entry_hash[:12]}, head says "
        f"{last.entry_hash[:12]}): history was rewritten")
    with store.metadata.engine.begin() as conn:
        conn.execute(ledger_entries.delete())
    gone = ledger.verify(against=head)
    assert gone.vanished and gone.broken_seq == 0
    assert gone.problem == ("ledger 'run-1' has vanished: the local witness head records entry 2, "
                            "but the store holds no entry of it (its entries were deleted)")
