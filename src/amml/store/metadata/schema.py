"""The metadata tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them;
``tests/store/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _code_version_columns() -> list[Column]:
    """Which code produced a run or a model version (``amml.store.code_version``), all
    nullable: rows written before migration 0004 have none."""
    return [Column("workflow_digest", String(64)), Column("code_commit", String(64)),
            Column("code_dirty", Boolean), Column("amml_version", String(64))]


runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=False, index=True),
    Column("kind", String(16), nullable=False, default="workflow"),
    Column("status", String(16), nullable=False, index=True),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("ir_digest", String(64)),
    Column("ir_json", Text),
    Column("source_file", Text),
    Column("error", Text),
    *_code_version_columns(),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("op", String(200), nullable=False),
    Column("op_version", String(32), nullable=False),
    Column("cache_key", String(64), index=True),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("error", Text),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("uri", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

lineage = Table(
    "lineage",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("step_name", String(200), nullable=False),
    Column("direction", String(3), nullable=False),  # "in" (read) or "out" (wrote)
    Column("port", String(200), nullable=False),
    Column("artifact_digest", String(64), nullable=False, index=True),
    Index("ix_lineage_run_step", "run_id", "step_name"),
)

cache_entries = Table(
    "cache_entries",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("partial_key", String(64), nullable=False, index=True),
    Column("op", String(200), nullable=False),
    Column("outputs", Text, nullable=False),  # JSON: output name -> artifact ref
    Column("run_id", String(32), nullable=False),
    Column("step_name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    # the entries a step wrote (who reused its outputs: lineage's consumers); migration 0012
    Index("ix_cache_entries_run_step", "run_id", "step_name"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("step_name", String(200), nullable=False, default=""),
    Column("key", String(250), nullable=False),
    # NaN and +-Inf are kept (MLflow keeps them too: a diverging loss is a result worth
    # seeing, not an error), but SQLite stores NaN as NULL and neither SQL nor JSON has a
    # portable Inf. So a non-finite value is NULL here and ``value_kind`` says which one
    # ('nan', 'inf', '-inf'); NULL kind means a finite value. Migration 0005.
    Column("value", Float, nullable=True),
    Column("value_kind", String(8), nullable=True),
    Column("step", BigInteger, nullable=False, default=0),
    Column("timestamp", Float, nullable=False),
    Index("ix_metrics_run_key", "run_id", "key"),
)

# Append-only, hash-linked and signed: the primary key on (ledger, seq) means two writers
# racing for the same sequence number cannot fork a ledger (one insert fails and retries).
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("body", Text, nullable=False),  # canonical JSON; entry_hash = sha256(body)
    Column("signature", String(128), nullable=False),  # Ed25519 over entry_hash
    Column("key_id", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("ledger", "seq", name="pk_ledger_entries"),
)

# -- the model registry (issue: registry and serving) --------------------------------------
model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_digest", String(64), nullable=False),
    Column("artifact_type", String(16), nullable=False),
    Column("run_id", String(32)),
    Column("step_name", String(200)),
    Column("metrics", Text, nullable=False),  # JSON
    Column("signature", Text, nullable=False),  # JSON: freq, lookback, horizon, columns...
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("deleted_at", Float),
    *_code_version_columns(),
    PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),  # None: the alias was removed
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("at", Float, nullable=False),
    Index("ix_alias_events_name", "name", "alias"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_hash", String(128), nullable=False),  # scrypt/sha256 hash, never the key
    Column("scope", String(16), nullable=False),  # "read", "predict", "admin"
    Column("models", Text, nullable=False, default="*"),  # JSON list of model names or "*"
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("endpoint", String(16), nullable=False),  # forecast | detect
    Column("received_at", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("status", Integer, nullable=False),
    Column("request", Text, nullable=False),  # JSON (the input window or a summary)
    Column("response", Text, nullable=False),  # JSON
    Index("ix_prediction_log_model", "model", "received_at"),
)

#: Commit order for batched writes: rows others refer to come first.
WRITE_ORDER = ("runs", "params", "artifacts", "steps", "lineage", "cache_entries", "metrics",
               "prediction_log")
#: Tables where a row may already exist (content-addressed): inserts ignore duplicates.
IDEMPOTENT = frozenset({"artifacts", "cache_entries", "params"})


#: Capabilities that keep tables of their own define them in their own module, on this
#: ``metadata``; importing them here makes every table known wherever the schema is (the
#: migration check, ``create_all`` in tests). A module not written yet is skipped.
TABLE_MODULES = ("amml.store.drift_events", "amml.store.devices", "amml.store.fleet",
                 "amml.store.labels", "amml.store.operations")


def _import_table_modules() -> None:
    import importlib

    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


_import_table_modules()
