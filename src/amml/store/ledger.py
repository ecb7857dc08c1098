"""A tamper-evident ledger of training checkpoints, with rollback to any entry.

Each entry is canonical JSON — sequence number, hash of the previous entry, time, kind
(``epoch``, ``rollback``, ``promotion``, ``key_rotation``, ``round``), checkpoint digest,
config/code/data digests, the code version of the run appending it (workflow digest, git
commit and dirty flag, AMML version) and metrics — hashed with sha256 and signed with Ed25519.
Checkpoints live in the content-addressed artifact store, so re-hashing a checkpoint file
proves it is the one recorded. Entries are only ever appended: a rollback restores a
checkpoint and appends a ``rollback`` entry; nothing is rewritten.

Verification checks, entry by entry: the sequence has no gap, the stored body hashes to the
entry hash, the body names its own sequence number and ledger, it links to the previous entry,
its signature is valid under a trusted key, and its checkpoint file still hashes to the
recorded digest. A signed head (sequence, hash), kept elsewhere, also catches a truncated
ledger; every append leaves one in the key folder as a local witness, naming the store it was
written to, so a ledger of this store whose entries were all deleted is still known and fails
verification (:meth:`Ledger.witnessed` lists them).

>>> import tempfile
>>> from amml.store import open_store
>>> from amml.store.keys import KeyRing
>>> store = open_store(tempfile.mkdtemp())
>>> ledger = Ledger(store, "demo", KeyRing(tempfile.mkdtemp()))
>>> for epoch in range(3):
...     _ = ledger.append("epoch", epoch=epoch, checkpoint=b"weights-%d" % epoch,
...                       metrics={"val_loss": 1.0 / (epoch + 1)})
>>> ledger.verify().ok
True
>>> data, target, entry = ledger.rollback(to_epoch=1)
>>> data, entry.kind, entry.seq
(b'weights-1', 'rollback', 3)
>>> store.close()
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from amml._exceptions import AMMLError, ArtifactCorruptError, LedgerError
from amml.store import Store
from amml.store.code_version import CodeVersion, detect
from amml.store.keys import KeyRing, public_from_hex, public_hex, verify_signature
from amml.store.metadata.schema import ledger_entries

GENESIS = "0" * 64
KINDS = ("epoch", "round", "rollback", "promotion", "key_rotation", "resume", "edge_export")


def canonical_body(body: dict[str, Any]) -> str:
    return json.dumps(_finite(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item"):  # numpy / torch scalars
        return _finite(value.item())
    return value


@dataclass(frozen=True)
class LedgerEntry:
    ledger: str
    seq: int
    kind: str
    prev_hash: str
    entry_hash: str
    body_text: str
    signature: str
    key_id: str
    created_at: float

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.body_text)

    @property
    def epoch(self) -> int | None:
        return self.body.get("epoch")

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        return self.body.get("checkpoint")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.body.get("metrics") or {}

    @property
    def resumed_from(self) -> dict[str, Any] | None:
        """``{"ledger", "seq", "hash"}`` of the entry a ``resume`` entry continues from."""
        return (self.body.get("extra") or {}).get("resumed_from") if self.kind == "resume" \
            else None

    @property
    def code_version(self) -> CodeVersion | None:
        """None for entries written before code versions were recorded."""
        recorded = self.body.get("code_version")
        return None if recorded is None else CodeVersion.from_json(recorded)


@dataclass
class VerifyReport:
    ledger: str
    ok: bool = True
    entries: int = 0
    checkpoints: int = 0
    bytes_checked: int = 0
    broken_seq: int | None = None
    problem: str | None = None
    head: tuple[int, str] | None = None
    witnessed: bool = False
    vanished: bool = False  # a head knows entries, the store holds none
    notes: list[str] = field(default_factory=list)

    def fail(self, seq: int | None, problem: str) -> VerifyReport:
        self.ok, self.broken_seq, self.problem = False, seq, problem
        return self

    def to_json(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "ok": self.ok, "entries": self.entries,
                "checkpoints": self.checkpoints, "bytes_checked": self.bytes_checked,
                "broken_seq": self.broken_seq, "problem": self.problem,
                "head": list(self.head) if self.head else None, "witnessed": self.witnessed,
                "vanished": self.vanished}


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class Ledger:
    """One append-only chain, e.g. the epochs of a training run.

    ``run_id`` names the run appending now. A resumed training writes a ledger of its own
    whose first entry (kind ``resume``, see :meth:`record_resume`) names the entry of the
    source ledger it continues from, by ledger, sequence and hash. Its code version goes into
    every new epoch and rollback entry, inside the signed body; without a run, that of the
    current folder. Entries written before code versions existed have no such field and
    verify as before: verification hashes the stored body, whatever fields it holds.
    """

    def __init__(self, store: Store, name: str, keyring: KeyRing | None = None, *,
                 run_id: str | None = None) -> None:
        if not name:
            raise LedgerError("a ledger needs a name (for example the training run id)")
        self.store, self.name, self.run_id = store, name, run_id
        self.keyring = keyring or KeyRing()
        self.engine = store.metadata.engine
        self._code_version: CodeVersion | None = None

    def code_version(self) -> CodeVersion:
        """The code version new entries record (looked up once per ledger object)."""
        if self._code_version is None:
            recorded = (self.store.metadata.code_version(self.run_id) if self.run_id
                        else None)
            self._code_version = recorded if recorded is not None else detect()
        return self._code_version

    # -- reading -------------------------------------------------------------------------
    def entries(self) -> list[LedgerEntry]:
        table = ledger_entries
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.ledger == self.name)
                                .order_by(table.c.seq)).all()
        return [LedgerEntry(r.ledger, int(r.seq), r.kind, r.prev_hash, r.entry_hash, r.body,
                            r.signature, r.key_id, r.created_at) for r in rows]

    def head(self) -> LedgerEntry | None:
        table = ledger_entries
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.ledger == self.name)
                               .order_by(table.c.seq.desc()).limit(1)).first()
        if row is None:
            return None
        return LedgerEntry(row.ledger, int(row.seq), row.kind, row.prev_hash, row.entry_hash,
                           row.body, row.signature, row.key_id, row.created_at)

    @staticmethod
    def names(store: Store) -> list[str]:
        with store.metadata.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(ledger_entries.c.ledger).distinct()
                                               .order_by(ledger_entries.c.ledger))]

    @staticmethod
    def witnessed(store: Store, keyring: KeyRing | None = None) -> list[str]:
        """Ledgers of this store that the local witness folder has seen appended to, whether
        or not the store still holds any of their entries."""
        folder = (keyring or KeyRing()).folder / "heads"
        identity = store_identity(store)
        names = set()
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            head = _read_json(path)
            # a witness from before witnesses named their store cannot say it is this store's
            if head and head.get("store") == identity and isinstance(head.get("ledger"), str):
                names.add(head["ledger"])
        return sorted(names)

    # -- writing -------------------------------------------------------------------------
    def append(self, kind: str, *, epoch: int | None = None, checkpoint: bytes | None = None,
               metrics: dict[str, Any] | None = None, config_digest: str | None = None,
               code_digest: str | None = None, data_digest: str | None = None,
               extra: dict[str, Any] | None = None) -> LedgerEntry:
        """Store ``checkpoint`` (if given) and append a signed entry describing it."""
        if kind not in KINDS:
            raise LedgerError(f"unknown ledger entry kind '{kind}' (known: {', '.join(KINDS)})")
        fields: dict[str, Any] = {"kind": kind}
        if epoch is not None:
            fields["epoch"] = int(epoch)
        if checkpoint is not None:
            digest = self.store.artifacts.put_bytes(checkpoint)
            fields["checkpoint"] = {"digest": digest, "size": len(checkpoint)}
        for name, value in (("config_digest", config_digest), ("code_digest", code_digest),
                            ("data_digest", data_digest)):
            if value is not None:
                fields[name] = value
        fields["metrics"] = dict(metrics or {})
        if extra:
            fields["extra"] = extra
        return self._append_fields(fields)

    def record_resume(self, source: Ledger, entry: LedgerEntry) -> LedgerEntry:
        """Append a ``resume`` entry: this ledger continues from ``entry`` of ``source``
        (its checkpoint, epoch and metrics, and a reference by ledger, sequence and hash that
        :meth:`verify` checks while the source ledger is in the store). The source ledger is
        only read: its chain stays that run's own."""
        if not entry.checkpoint:
            raise LedgerError(f"entry {entry.seq} of ledger '{source.name}' has no checkpoint "
                              "to resume from")
        return self._append_fields({
            "kind": "resume", "epoch": entry.epoch, "checkpoint": entry.checkpoint,
            "metrics": entry.metrics,
            "extra": {"resumed_from": {"ledger": source.name, "seq": entry.seq,
                                       "hash": entry.entry_hash}}})

    def _append_fields(self, fields: dict[str, Any]) -> LedgerEntry:
        fields = {**fields, "code_version": self.code_version().to_json()}
        for _attempt in range(50):
            head = self.head()
            key = self.keyring.active()
            signer = None if head is None else (
                head.body.get("new_key_id") if head.kind == "key_rotation" else head.key_id)
            if (signer is not None and signer != key.key_id
                    and self.keyring.has_private(signer)):
                self._hand_over(head, key)  # the old key vouches for the new one
                continue
            seq = 0 if head is None else head.seq + 1
            prev = GENESIS if head is None else head.entry_hash
            body = {**fields, "ledger": self.name, "seq": seq, "prev": prev,
                    "time": time.time(), "key_id": key.key_id}
            entry = self._signed(body, key_id=key.key_id, signer=key)
            try:
                self._insert(entry)
            except IntegrityError:  # another writer took this sequence number: re-read
                time.sleep(0.001 * (_attempt + 1))
                continue
            self._write_witness(entry)
            return entry
        raise LedgerError(f"could not append to ledger '{self.name}': too many concurrent "
                          "writers")

    def _hand_over(self, head: LedgerEntry, new_key) -> None:
        signer = head.body.get("new_key_id") if head.kind == "key_rotation" else head.key_id
        old = self.keyring.private(signer)
        body = {"kind": "key_rotation", "ledger": self.name, "seq": head.seq + 1,
                "prev": head.entry_hash, "time": time.time(), "key_id": old.key_id,
                "new_key_id": new_key.key_id, "new_public_key": public_hex(new_key.public),
                "metrics": {}}
        entry = self._signed(body, key_id=old.key_id, signer=old)
        try:
            self._insert(entry)
        except IntegrityError:
            return
        self._write_witness(entry)

    def _signed(self, body: dict[str, Any], *, key_id: str, signer) -> LedgerEntry:
        text = canonical_body(body)
        entry_hash = hashlib.sha256(text.encode()).hexdigest()
        return LedgerEntry(self.name, body["seq"], body["kind"], body["prev"], entry_hash, text,
                           signer.sign(entry_hash.encode()), key_id, body["time"])

    def _insert(self, entry: LedgerEntry) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(ledger_entries), [{
                "ledger": entry.ledger, "seq": entry.seq, "kind": entry.kind,
                "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash,
                "body": entry.body_text, "signature": entry.signature,
                "key_id": entry.key_id, "created_at": entry.created_at}])

    # -- signed heads ----------------------------------------------------------------------
    def signed_head(self) -> dict[str, Any]:
        """A statement of (sequence, hash) of the newest entry, signed by the active key."""
        head = self.head()
        if head is None:
            raise LedgerError(f"ledger '{self.name}' is empty")
        key = self.keyring.active()
        statement = {"ledger": self.name, "seq": head.seq, "hash": head.entry_hash,
                     "time": time.time(), "key_id": key.key_id}
        message = canonical_body(statement).encode()
        return {**statement, "signature": key.sign(message)}

    def _witness_path(self) -> Path:
        return self.keyring.folder / "heads" / f"{_safe_name(self.name)}.json"

    def _write_witness(self, entry: LedgerEntry) -> None:
        folder = self._witness_path().parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{os.getpid()}-{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps({"ledger": self.name, "seq": entry.seq,
                                   "hash": entry.entry_hash,
                                   "store": store_identity(self.store)}))
        os.replace(tmp, self._witness_path())

    # -- verifying -------------------------------------------------------------------------
    def verify(self, *, upto_seq: int | None = None, check_checkpoints: bool = True,
               against: dict[str, Any] | None = None) -> VerifyReport:
        """Check every link, signature and checkpoint; report the first broken entry."""
        report = VerifyReport(self.name)
        entries = self.entries()
        if upto_seq is not None:
            entries = [e for e in entries if e.seq <= upto_seq]
        trusted: dict[str, Any] = {}
        prev, expected = GENESIS, 0
        for entry in entries:
            problem = self._check_entry(entry, expected, prev, trusted)
            if problem is not None:
                return report.fail(problem[0], problem[1])
            body = entry.body
            if entry.kind == "key_rotation":
                trusted[body["new_key_id"]] = public_from_hex(body["new_public_key"])
            origin = entry.resumed_from
            if origin is not None:
                problem_text = self._check_origin(entry, origin, report)
                if problem_text:
                    return report.fail(entry.seq, problem_text)
            checkpoint = body.get("checkpoint")
            if check_checkpoints and checkpoint and entry.kind != "rollback":
                problem_text = self._check_checkpoint(entry, checkpoint, report)
                if problem_text:
                    return report.fail(entry.seq, problem_text)
            prev, expected = entry.entry_hash, expected + 1
            report.entries += 1
        if entries:
            report.head = (entries[-1].seq, entries[-1].entry_hash)
        if upto_seq is None:
            witness = self._read_witness()
            for label, head in (("local witness head", witness), ("head file", against)):
                if head is None:
                    continue
                problem_text = self._check_head(head, entries, label, trusted,
                                                signed=label == "head file")
                if problem_text:
                    report.vanished = not entries
                    return report.fail(min(int(head.get("seq", 0)), len(entries)),
                                       problem_text)
                report.witnessed = True
        return report

    def _check_entry(self, entry: LedgerEntry, expected: int, prev: str,
                     trusted: dict[str, Any]) -> tuple[int, str] | None:
        if entry.seq != expected:
            return expected, (f"entry {expected} is missing: the ledger jumps from entry "
                              f"{expected - 1} to entry {entry.seq} (an entry was deleted)")
        digest = hashlib.sha256(entry.body_text.encode()).hexdigest()
        if digest != entry.entry_hash:
            what = _describe_change(entry)
            return entry.seq, (f"entry {entry.seq} ({entry.kind}{_epoch(entry)}) was modified: "
                               f"its content hashes to {digest[:12]}, recorded "
                               f"{entry.entry_hash[:12]}{what}")
        try:
            body = json.loads(entry.body_text)
        except ValueError:
            return entry.seq, f"entry {entry.seq}: body is not valid JSON"
        if body.get("seq") != entry.seq or body.get("ledger") != self.name:
            return entry.seq, (f"entry {entry.seq}: its body says ledger "
                               f"'{body.get('ledger')}' entry {body.get('seq')} "
                               "(entries were reordered or moved)")
        if entry.prev_hash != body.get("prev") or body.get("prev") != prev:
            return entry.seq, (f"entry {entry.seq}: link to the previous entry is broken "
                               f"(expected {prev[:12]}, found {str(body.get('prev'))[:12]}); "
                               "entries were reordered, inserted or removed")
        if entry.kind != body.get("kind") or entry.key_id != body.get("key_id"):
            return entry.seq, f"entry {entry.seq}: columns disagree with the signed body"
        public = trusted.get(entry.key_id) or self.keyring.trusted(entry.key_id)
        if public is None:
            return entry.seq, (f"entry {entry.seq} is signed by unknown key {entry.key_id}; "
                               f"trust it with 'amml ledger trust PUBLIC_KEY' if it is yours")
        if not verify_signature(public, entry.signature, entry.entry_hash.encode()):
            return entry.seq, (f"entry {entry.seq}: invalid signature (key {entry.key_id}); "
                               "the entry hash or signature was altered")
        return None

    def _check_origin(self, entry: LedgerEntry, origin: dict[str, Any],
                      report: VerifyReport) -> str | None:
        """A ``resume`` entry's source entry must still hash as recorded; a source ledger no
        longer in this store (exported, or another store's) is noted, not failed."""
        where = f"{origin.get('ledger')}@{origin.get('seq')}"
        source = Ledger(self.store, str(origin.get("ledger")), self.keyring)
        found = [e for e in source.entries() if e.seq == origin.get("seq")]
        if not found:
            report.notes.append(f"entry {entry.seq} resumes from {where}, which this store "
                                "does not hold")
            return None
        if found[0].entry_hash != origin.get("hash"):
            return (f"entry {entry.seq} resumes from {where} with hash "
                    f"{str(origin.get('hash'))[:12]}, but that entry now hashes "
                    f"{found[0].entry_hash[:12]}: the source ledger was rewritten")
        return None

    def _check_checkpoint(self, entry: LedgerEntry, checkpoint: dict[str, Any],
                          report: VerifyReport) -> str | None:
        digest = checkpoint["digest"]
        try:
            data = self.store.artifacts.get_bytes(digest)
        except ArtifactCorruptError as exc:  # the store's own check caught it (and moved it)
            aside = f"; moved aside to {exc.quarantined}" if exc.quarantined else ""
            return (f"entry {entry.seq} ({entry.kind}{_epoch(entry)}): checkpoint file "
                    f"{digest[:12]} was modified (its bytes no longer hash to it{aside})")
        except AMMLError:
            return (f"entry {entry.seq} ({entry.kind}{_epoch(entry)}): checkpoint "
                    f"{digest[:12]} is missing from the artifact store")
        actual = hashlib.sha256(data).hexdigest()
        report.checkpoints += 1
        report.bytes_checked += len(data)
        if actual != digest:
            return (f"entry {entry.seq} ({entry.kind}{_epoch(entry)}): checkpoint file "
                    f"{digest[:12]} was modified (its bytes hash to {actual[:12]})")
        return None

    def _read_witness(self) -> dict[str, Any] | None:
        """The local witness of this ledger in this store (one that names another store is
        that store's: the key folder is shared by every store of the user)."""
        head = _read_json(self._witness_path())
        if head is None or head.get("store", store_identity(self.store)) != store_identity(
                self.store):
            return None
        return head

    def _check_head(self, head: dict[str, Any], entries: list[LedgerEntry], label: str,
                    trusted: dict[str, Any], signed: bool) -> str | None:
        if head.get("ledger") != self.name:
            return f"the {label} is for ledger '{head.get('ledger')}', not '{self.name}'"
        seq = int(head["seq"])
        if signed:
            statement = {k: head[k] for k in ("ledger", "seq", "hash", "time", "key_id")}
            public = trusted.get(head["key_id"]) or self.keyring.trusted(head["key_id"])
            if public is None or not verify_signature(
                    public, head.get("signature", ""), canonical_body(statement).encode()):
                return f"the {label} is not validly signed by a trusted key"
        if not entries:
            return (f"ledger '{self.name}' has vanished: the {label} records entry {seq}, "
                    "but the store holds no entry of it (its entries were deleted)")
        if seq >= len(entries):
            return (f"the ledger was truncated: the {label} records entry {seq}, "
                    f"but the ledger ends at entry {len(entries) - 1}")
        if entries[seq].entry_hash != head["hash"]:
            return (f"entry {seq} differs from the {label} (hash {entries[seq].entry_hash[:12]}, "
                    f"head says {str(head['hash'])[:12]}): history was rewritten")
        return None

    # -- rollback --------------------------------------------------------------------------
    def find(self, *, epoch: int | None = None, seq: int | None = None) -> LedgerEntry:
        """The entry at ``seq``, or the newest checkpointed entry of ``epoch``."""
        entries = self.entries()
        if seq is not None:
            found = [e for e in entries if e.seq == seq]
        else:
            found = [e for e in entries if e.epoch == epoch and e.checkpoint
                     and e.kind in ("epoch", "round", "resume")][-1:]
        if not found:
            epochs = sorted({e.epoch for e in entries if e.epoch is not None})
            shown = f"{epochs[0]}..{epochs[-1]}" if epochs else "none"
            raise LedgerError(f"ledger '{self.name}' has no checkpoint for "
                              + (f"entry {seq}" if seq is not None else f"epoch {epoch}")
                              + f" (epochs recorded: {shown})")
        return found[0]

    def checkpoint_at(self, seq: int) -> tuple[bytes, LedgerEntry]:
        """The verified checkpoint bytes of entry ``seq`` (an epoch or a rollback entry)."""
        entry = self.find(seq=seq)
        if not entry.checkpoint:
            raise LedgerError(f"entry {seq} of ledger '{self.name}' has no checkpoint")
        report = self.verify(upto_seq=seq)
        if not report.ok:
            raise LedgerError(f"ledger '{self.name}' is broken: {report.problem}")
        data = self.store.artifacts.get_bytes(entry.checkpoint["digest"])
        if hashlib.sha256(data).hexdigest() != entry.checkpoint["digest"]:
            raise LedgerError(f"checkpoint {entry.checkpoint['digest'][:12]} changed")
        return data, entry

    def rollback(self, to_epoch: int | None = None, *, seq: int | None = None,
                 reason: str = "") -> tuple[bytes, LedgerEntry, LedgerEntry]:
        """Verify up to the target, restore its checkpoint bytes, append a rollback entry.

        Returns (checkpoint bytes, the target entry, the new rollback entry).
        """
        target = self.find(epoch=to_epoch, seq=seq)
        report = self.verify(upto_seq=target.seq)
        if not report.ok:
            raise LedgerError(f"cannot roll back ledger '{self.name}': {report.problem}")
        checkpoint = target.checkpoint or {}
        data = self.store.artifacts.get_bytes(checkpoint["digest"])
        if hashlib.sha256(data).hexdigest() != checkpoint["digest"]:
            raise LedgerError(f"checkpoint {checkpoint['digest'][:12]} changed after verifying")
        entry = self._append_fields({
            "kind": "rollback", "epoch": target.epoch, "checkpoint": checkpoint,
            "metrics": target.metrics,
            "extra": {"target_seq": target.seq, "target_hash": target.entry_hash,
                      "reason": reason}})
        return data, target, entry


def store_identity(store: Store) -> str | None:
    """Which metadata store this is, as a witness records it: the absolute path of a SQLite
    file, or a server's backend, user, host, port and database (never a password)."""
    from sqlalchemy.engine import make_url

    metadata = store.metadata
    path = getattr(metadata, "_sqlite_path", None)
    if metadata.dialect == "sqlite":
        return f"sqlite:{path.resolve()}" if path is not None else None
    parsed = make_url(metadata.url)
    port = parsed.port or {"postgresql": 5432, "mysql": 3306}.get(metadata.dialect, "")
    return (f"{metadata.dialect}://{parsed.username or ''}@{(parsed.host or '').lower()}:"
            f"{port}/{parsed.database or ''}")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _epoch(entry: LedgerEntry) -> str:
    try:
        epoch = json.loads(entry.body_text).get("epoch")
    except ValueError:
        return ""
    return f", epoch {epoch}" if epoch is not None else ""


def _describe_change(entry: LedgerEntry) -> str:
    """Name the fields whose values no longer match what was signed, where we can tell."""
    try:
        body = json.loads(entry.body_text)
    except ValueError:
        return ""
    if canonical_body(body) != entry.body_text:
        return " (the stored body is not in canonical form)"
    metrics = body.get("metrics")
    return f"; current metrics: {metrics}" if metrics else ""
