"""Edge devices in the store: devices with one key each, per-group assignments, the edge
variants of model versions, and what devices report.

* ``edge_devices``: a device's id, name, group and the ``sha256:`` of its key's secret (the key
  reads ``edge_<device id>_<secret>``, shown once at registration), its last report.
* ``edge_assignments``: which model reference (``oil@champion``) and format (``int8``) a group
  of devices runs; moving it is how a fleet is updated.
* ``edge_variants``: the ONNX forms of a model version (its children): format, artifact digest,
  size, parity error against the version, accuracy change, and the signed manifest a device
  verifies before it loads one.
* ``edge_reports``: health and metrics devices send, newest kept per device.

>>> import tempfile
>>> from amml.store import open_store
>>> store = open_store(tempfile.mkdtemp())
>>> device, token = register_device(store, "pump-7", group="pumps")
>>> authenticate_device(store, token).name, authenticate_device(store, token + "x")
('pump-7', None)
>>> set_assignment(store, "pumps", "oil@champion", "int8", actor="ana").model
'oil@champion'
>>> store.close()
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    desc,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from amml._exceptions import ConfigurationError, RegistryError
from amml.store import Store
from amml.store.metadata.schema import metadata


def hash_secret(secret: str) -> str:
    # imported on use: the schema imports this module while amml.store.api_keys (which
    # imports the schema) may still be loading
    from amml.store.api_keys import hash_secret as api_hash

    return api_hash(secret)

BigId = BigInteger().with_variant(Integer(), "sqlite")

DEVICE_PREFIX = "edge"
#: The formats an edge variant may have (see :mod:`amml.edge.export`).
FORMATS = ("fp32", "fp16", "int8", "int8-static")
#: Reports kept per device: the newest ones (memory on the server stays bounded too).
REPORTS_KEPT = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

edge_devices = Table(
    "edge_devices",
    metadata,
    Column("device_id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("group_name", String(100), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("last_seen", Float),
    Column("last_report", Text),  # JSON: the newest report's body
    UniqueConstraint("name", name="uq_edge_devices_name"),
    Index("ix_edge_devices_group", "group_name"),
)

edge_assignments = Table(
    "edge_assignments",
    metadata,
    Column("group_name", String(100), primary_key=True),
    Column("model", String(300), nullable=False),  # NAME@ALIAS or NAME@VERSION
    Column("format", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

edge_variants = Table(
    "edge_variants",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("format", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("parity_max_abs", Float, nullable=False),
    Column("mse_delta_pct", Float),  # None: exported without evaluation windows
    Column("manifest", Text, nullable=False),  # canonical JSON, the signed text
    Column("signature", String(128), nullable=False),  # Ed25519 over the manifest, hex
    Column("key_id", String(32), nullable=False),
    Column("ledger_seq", Integer),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Index("ix_edge_variants_version", "name", "version", "format"),
)

edge_reports = Table(
    "edge_reports",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("device_id", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("body", Text, nullable=False),  # JSON
    Index("ix_edge_reports_device", "device_id", "at"),
)


@dataclass(frozen=True)
class EdgeDevice:
    device_id: str
    name: str
    group: str
    created_at: float
    revoked_at: float | None
    last_seen: float | None
    last_report: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "name": self.name, "group": self.group,
                "created_at": self.created_at, "revoked_at": self.revoked_at,
                "last_seen": self.last_seen, "last_report": self.last_report}


@dataclass(frozen=True)
class Assignment:
    group: str
    model: str
    format: str
    updated_at: float
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "model": self.model, "format": self.format,
                "updated_at": self.updated_at, "updated_by": self.updated_by}


@dataclass(frozen=True)
class EdgeVariant:
    id: int
    name: str
    version: int
    format: str
    digest: str
    size: int
    parity_max_abs: float
    mse_delta_pct: float | None
    manifest: str
    signature: str
    key_id: str
    ledger_seq: int | None
    created_at: float
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}/{self.format}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "parent": f"{self.name}@{self.version}", "format": self.format,
                "digest": self.digest, "size": self.size,
                "parity_max_abs": self.parity_max_abs, "mse_delta_pct": self.mse_delta_pct,
                "key_id": self.key_id, "ledger_seq": self.ledger_seq,
                "created_at": self.created_at, "created_by": self.created_by}


def _check_name(what: str, value: str) -> str:
    if not _NAME.match(value or ""):
        raise ConfigurationError(f"invalid {what} '{value}' (letters, digits, '_', '-', '.'; "
                                 "at most 100)")
    return value


def _device(row: Any) -> EdgeDevice:
    return EdgeDevice(row.device_id, row.name, row.group_name, row.created_at, row.revoked_at,
                      row.last_seen, json.loads(row.last_report) if row.last_report else None)


# -- devices ----------------------------------------------------------------------------------
def register_device(store: Store, name: str, *, group: str) -> tuple[EdgeDevice, str]:
    """A new device in ``group``; returns it and its key (shown once, kept only hashed)."""
    _check_name("device name", name)
    _check_name("group", group)
    device_id = secrets.token_hex(6)
    secret = secrets.token_hex(32)
    row = dict(device_id=device_id, name=name, group_name=group,
               secret_hash=hash_secret(secret), created_at=time.time(), revoked_at=None,
               last_seen=None, last_report=None)
    try:
        with store.metadata.engine.begin() as conn:
            conn.execute(insert(edge_devices), [row])
    except IntegrityError:
        raise ConfigurationError(f"a device named '{name}' is already registered") from None
    return _device(_Row(row)), f"{DEVICE_PREFIX}_{device_id}_{secret}"


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def authenticate_device(store: Store, token: str) -> EdgeDevice | None:
    """The live device a key belongs to, or None (malformed, unknown, wrong or revoked)."""
    parts = (token or "").strip().split("_")
    if len(parts) != 3 or parts[0] != DEVICE_PREFIX or not parts[1] or not parts[2]:
        return None
    with store.metadata.engine.connect() as conn:
        row = conn.execute(select(edge_devices).where(
            edge_devices.c.device_id == parts[1])).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, hash_secret(parts[2])):
        return None
    return _device(row)


def list_devices(store: Store, group: str | None = None) -> list[EdgeDevice]:
    query = select(edge_devices).order_by(edge_devices.c.group_name, edge_devices.c.name)
    if group is not None:
        query = query.where(edge_devices.c.group_name == group)
    with store.metadata.engine.connect() as conn:
        return [_device(row) for row in conn.execute(query)]


def find_device(store: Store, name_or_id: str) -> EdgeDevice:
    for device in list_devices(store):
        if name_or_id in (device.name, device.device_id):
            return device
    raise ConfigurationError(f"no edge device named '{name_or_id}'")


def revoke_device(store: Store, name_or_id: str) -> EdgeDevice:
    device = find_device(store, name_or_id)
    if device.revoked_at is None:
        with store.metadata.engine.begin() as conn:
            conn.execute(update(edge_devices).where(
                edge_devices.c.device_id == device.device_id).values(revoked_at=time.time()))
    return find_device(store, device.device_id)


def record_report(store: Store, device_id: str, body: dict[str, Any]) -> None:
    """Keep a device's report (and as its ``last_report``); older ones beyond
    :data:`REPORTS_KEPT` are dropped."""
    now = time.time()
    text = json.dumps(body, sort_keys=True, allow_nan=False)
    with store.metadata.engine.begin() as conn:
        conn.execute(insert(edge_reports), [dict(device_id=device_id, at=now, body=text)])
        conn.execute(update(edge_devices).where(edge_devices.c.device_id == device_id)
                     .values(last_seen=now, last_report=text))
        cutoff = conn.execute(select(edge_reports.c.id).where(
            edge_reports.c.device_id == device_id).order_by(desc(edge_reports.c.id))
            .offset(REPORTS_KEPT).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(delete(edge_reports).where(edge_reports.c.device_id == device_id,
                                                    edge_reports.c.id <= cutoff))


def reports(store: Store, device_id: str, limit: int = 50) -> list[dict[str, Any]]:
    with store.metadata.engine.connect() as conn:
        rows = conn.execute(select(edge_reports).where(edge_reports.c.device_id == device_id)
                            .order_by(desc(edge_reports.c.id)).limit(limit)).all()
    return [{"at": row.at, **json.loads(row.body)} for row in rows]


# -- assignments ------------------------------------------------------------------------------
def set_assignment(store: Store, group: str, model: str, fmt: str, *, actor: str
                   ) -> Assignment:
    """Point ``group`` at ``model`` (``NAME@ALIAS`` or ``NAME@VERSION``) in format ``fmt``."""
    _check_name("group", group)
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown edge format '{fmt}' (formats: {', '.join(FORMATS)})")
    if "@" not in model:
        raise ConfigurationError(f"assign a reference NAME@ALIAS or NAME@VERSION, got '{model}'")
    row = dict(group_name=group, model=model, format=fmt, updated_at=time.time(),
               updated_by=actor)
    with store.metadata.engine.begin() as conn:
        done = conn.execute(update(edge_assignments).where(
            edge_assignments.c.group_name == group).values(**row)).rowcount
        if not done:
            conn.execute(insert(edge_assignments), [row])
    return Assignment(group, model, fmt, row["updated_at"], actor)


def get_assignment(store: Store, group: str) -> Assignment | None:
    with store.metadata.engine.connect() as conn:
        row = conn.execute(select(edge_assignments).where(
            edge_assignments.c.group_name == group)).first()
    return None if row is None else Assignment(row.group_name, row.model, row.format,
                                               row.updated_at, row.updated_by)


def list_assignments(store: Store) -> list[Assignment]:
    with store.metadata.engine.connect() as conn:
        rows = conn.execute(select(edge_assignments).order_by(edge_assignments.c.group_name))
        return [Assignment(r.group_name, r.model, r.format, r.updated_at, r.updated_by)
                for r in rows]


# -- variants ---------------------------------------------------------------------------------
def add_variant(store: Store, *, name: str, version: int, fmt: str, digest: str, size: int,
                parity_max_abs: float, mse_delta_pct: float | None, manifest: str,
                signature: str, key_id: str, ledger_seq: int | None, actor: str
                ) -> EdgeVariant:
    row = dict(name=name, version=int(version), format=fmt, digest=digest, size=int(size),
               parity_max_abs=float(parity_max_abs),
               mse_delta_pct=None if mse_delta_pct is None else float(mse_delta_pct),
               manifest=manifest, signature=signature, key_id=key_id, ledger_seq=ledger_seq,
               created_at=time.time(), created_by=actor)
    with store.metadata.engine.begin() as conn:
        new_id = conn.execute(insert(edge_variants).values(**row)).inserted_primary_key[0]
    return EdgeVariant(id=int(new_id), **{k: v for k, v in row.items() if k != "format"},
                       format=fmt)


def _variant(row: Any) -> EdgeVariant:
    return EdgeVariant(int(row.id), row.name, int(row.version), row.format, row.digest,
                       int(row.size), row.parity_max_abs, row.mse_delta_pct, row.manifest,
                       row.signature, row.key_id, row.ledger_seq, row.created_at,
                       row.created_by)


def variants(store: Store, name: str | None = None, version: int | None = None,
             fmt: str | None = None) -> list[EdgeVariant]:
    """Edge variants, oldest first (of one model, version and format when given)."""
    query = select(edge_variants).order_by(edge_variants.c.id)
    if name is not None:
        query = query.where(edge_variants.c.name == name)
    if version is not None:
        query = query.where(edge_variants.c.version == int(version))
    if fmt is not None:
        query = query.where(edge_variants.c.format == fmt)
    with store.metadata.engine.connect() as conn:
        return [_variant(row) for row in conn.execute(query)]


def latest_variant(store: Store, name: str, version: int, fmt: str) -> EdgeVariant:
    found = variants(store, name, version, fmt)
    if not found:
        raise RegistryError(f"{name}@{version} has no '{fmt}' edge variant; export one: "
                            f"amml edge export {name}@{version} --format {fmt}")
    return found[-1]


def variant_by_digest(store: Store, digest: str) -> EdgeVariant | None:
    with store.metadata.engine.connect() as conn:
        row = conn.execute(select(edge_variants).where(edge_variants.c.digest == digest)
                           .order_by(desc(edge_variants.c.id)).limit(1)).first()
    return None if row is None else _variant(row)
