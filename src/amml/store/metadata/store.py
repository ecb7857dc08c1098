"""The metadata store: runs, steps, params, metrics, artifacts, lineage and the step cache.

SQLite by default (``.amml/amml.db``, WAL mode so readers never block the writer), PostgreSQL
with ``postgresql+psycopg://...``. The schema is created and upgraded by Alembic: on open when
asked (``migrate=True``; ``None`` does so for SQLite only, so a shared server database changes
only through ``amml store init|upgrade``), and concurrent migrations serialize on a lock (an
advisory lock on PostgreSQL, a file lock on SQLite). A store opened ``read_only`` cannot write
at all: SQLite opens the file with ``mode=ro`` and ``query_only``, PostgreSQL sessions are
``default_transaction_read_only``; a missing SQLite file reads as an empty store.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from amml._exceptions import ConfigurationError, RunNotFoundError, StoreError
from amml._urls import encode_userinfo, redact_url, remember_secrets
from amml._urls import redact as redact_text
from amml.store.code_version import CodeVersion
from amml.store.metadata import schema
from amml.store.metadata.reads import MetricReads
from amml.store.metadata.writer import GroupCommitWriter

HEAD_REVISION = "0012"
COPY_THRESHOLD = 200  # rows; PostgreSQL batches at least this big go through COPY
MIGRATIONS = Path(__file__).with_name("migrations")
TABLES = {t.name: t for t in schema.metadata.sorted_tables}


def redact(url: str) -> str:
    """The URL with every credential hidden (user-info password, ``?password=``, tokens), safe
    to print; its secrets are also hidden from every later message of this process."""
    remember_secrets(url)
    return redact_url(url)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MetadataStore(MetricReads):
    """Run metadata on SQLAlchemy 2. Writes on the hot path go through a group-commit writer."""

    def __init__(self, url: str, *, migrate: bool | None = True, read_only: bool = False,
                 check: bool = True) -> None:
        """``migrate``: True creates or upgrades the schema on open; None does so only for an
        embedded SQLite store; False never. A store not migrated on open must already be at
        the current revision (``check``), else a :class:`StoreError` names the command to run.
        ``read_only`` implies no migration and refuses every write at the database level."""
        self.url = url
        self.display_url = redact(url)
        url = encode_userinfo(url)  # SQLAlchemy then reads the password redact() hid
        self.read_only = read_only
        try:
            parsed = make_url(url)
        except Exception as exc:
            # SQLAlchemy quotes the piece it could not read, which may be part of a password
            raise ConfigurationError(
                f"invalid store URL {self.display_url}: SQLAlchemy cannot read it "
                f"({type(exc).__name__}); percent-encode '@', ':', '/' and '?' in a password "
                "(%40, %3A, %2F, %3F)") from None
        self.dialect = parsed.get_backend_name()
        self._sqlite_path: Path | None = None
        self._empty = False  # read-only on a SQLite file that does not exist yet
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
            if parsed.database and parsed.database != ":memory:":
                self._sqlite_path = Path(parsed.database)
                if read_only and not self._sqlite_path.exists():
                    # nothing recorded yet: read an empty in-memory schema, create no file
                    url, self._empty = "sqlite://", True
                    kwargs["poolclass"] = StaticPool
                elif read_only:
                    url = _read_only_sqlite_url(self._sqlite_path)
                else:
                    self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
            if read_only and self.dialect == "postgresql":
                # the server itself refuses writes: a bug cannot write through a read command
                kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except ImportError as exc:
            raise ConfigurationError(
                f"the driver for {self.display_url} is not installed ({exc}); "
                "for PostgreSQL: pip install 'amml[postgres]'"
            ) from None
        if self._empty:
            schema.metadata.create_all(self.engine)  # in memory only
            with self.engine.connect() as conn:  # StaticPool: the one connection, now read-only
                conn.exec_driver_sql("PRAGMA query_only=ON")
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect",
                         _sqlite_read_only_pragmas if read_only else _sqlite_pragmas)
        self.writer = GroupCommitWriter(self.engine, self._write_batch)
        self._sync_lock = threading.Lock()
        self._sync_conn: Connection | None = None
        self._statements: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}
        if migrate is None:
            migrate = self.dialect == "sqlite"
        if migrate and not read_only:
            self.migrate()
        elif check and not self._empty:
            self.check_schema()

    # -- schema --------------------------------------------------------------------------
    @contextmanager
    def _file_lock(self):
        """SQLite: serialize migrations across processes. Held around the whole transaction,
        so the next process only looks after this one's schema is committed."""
        if self._sqlite_path is None:
            yield
            return
        lock_path = self._sqlite_path.with_name(self._sqlite_path.name + ".lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the metadata store {self.display_url}: "
                             f"{exc.__class__.__name__}: {_short(exc)}") from None

    def schema_problem(self) -> str | None:
        """Why this code cannot use the store's schema as it is (with the command that fixes
        it), or None when it is at the current revision."""
        revision = self.current_revision()
        if revision == HEAD_REVISION:
            return None
        where = f"the metadata store {self.display_url}"
        if revision is None:
            return (f"{where} has no AMML schema yet: create it once with 'amml store init' "
                    "(server stores are never created implicitly)")
        if revision in known_revisions():
            return (f"{where} is at schema revision {revision}, this AMML needs "
                    f"{HEAD_REVISION}: migrate it with 'amml store upgrade'")
        return (f"{where} is at schema revision {revision}, which this AMML does not know "
                f"(it expects {HEAD_REVISION}): it was migrated by a newer AMML; upgrade AMML")

    def check_schema(self) -> None:
        problem = self.schema_problem()
        if problem is not None:
            raise StoreError(problem)

    def init_schema(self) -> tuple[str | None, str]:
        """``amml store init``: create the schema in a database without one.
        Returns (revision before, revision after); a store already at head is left alone."""
        revision = self.current_revision()
        if revision is not None and revision != HEAD_REVISION:
            raise StoreError(self.schema_problem() or "")  # exists: upgrade, not init
        self.migrate()
        return revision, HEAD_REVISION

    def upgrade_schema(self) -> tuple[str | None, str]:
        """``amml store upgrade``: migrate an existing schema to the current revision."""
        revision = self.current_revision()
        if revision is None:
            raise StoreError(f"the metadata store {self.display_url} has no AMML schema to "
                             "upgrade: create it with 'amml store init'")
        if revision != HEAD_REVISION and revision not in known_revisions():
            raise StoreError(self.schema_problem() or "")
        self.migrate()
        return revision, HEAD_REVISION

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision (idempotent, concurrency-safe)."""
        if self.read_only:
            raise StoreError(f"the metadata store {self.display_url} is open read-only")
        try:
            if self.current_revision() == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            with self._file_lock(), self.engine.begin() as conn:
                from alembic.runtime.migration import MigrationContext

                if self.dialect == "postgresql":  # released when the transaction ends
                    conn.execute(text("SELECT pg_advisory_xact_lock(7242001)"))

                if MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION:
                    return
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the metadata store {self.display_url}: "
                             f"{exc.__class__.__name__}: {_short(exc)}") from None

    # -- writing -------------------------------------------------------------------------
    def _insert(self, table_name: str):
        table = TABLES[table_name]
        if table_name not in schema.IDEMPOTENT:
            return insert(table)
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        elif self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            return insert(table).prefix_with("IGNORE")
        return dialect_insert(table).on_conflict_do_nothing()

    def _write_batch(self, conn: Connection, batch: dict[str, list[dict[str, Any]]]) -> None:
        for table_name, rows in batch.items():
            if table_name == "metrics":
                rows = encode_metric_rows(rows)
            conn.execute(self._insert(table_name), rows)

    def write_now(self, table_name: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert and commit before returning (bypassing the group-commit queue).

        Uses one long-lived connection and, for a single row, a statement compiled once per
        table and column set: a synchronous ``log_metric`` costs one driver call and a commit.
        """
        if not rows:
            return
        if table_name == "metrics":
            rows = encode_metric_rows(rows)
        with self._sync_lock:
            try:
                if self._sync_conn is None:
                    self._sync_conn = self.engine.connect()
                conn = self._sync_conn
                if len(rows) == 1:
                    row = rows[0]
                    sql, order = self._compiled(table_name, tuple(row))
                    conn.exec_driver_sql(sql, tuple(row[k] for k in order) if order
                                         else dict(row))
                elif (self.dialect == "postgresql" and len(rows) >= COPY_THRESHOLD
                      and table_name not in schema.IDEMPOTENT):
                    self._copy_rows(conn, table_name, rows)
                else:
                    conn.execute(self._insert(table_name), list(rows))
                conn.commit()
            except SQLAlchemyError as exc:
                if self._sync_conn is not None:
                    self._sync_conn.close()
                    self._sync_conn = None
                raise StoreError(f"metadata store {self.display_url}: {_short(exc)}") from None

    @staticmethod
    def _copy_rows(conn: Connection, table_name: str, rows: Sequence[dict[str, Any]]) -> None:
        """PostgreSQL COPY: several times faster than multi-row INSERT for big batches."""
        columns = list(rows[0])
        cursor = conn.connection.dbapi_connection.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        with cursor.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in columns))
        # the COPY ran on the driver connection, outside SQLAlchemy's transaction bookkeeping
        conn.connection.dbapi_connection.commit()

    def _compiled(self, table_name: str, columns: tuple[str, ...]
                  ) -> tuple[str, tuple[str, ...] | None]:
        key = (table_name, columns)
        found = self._statements.get(key)
        if found is None:
            compiled = self._insert(table_name).compile(dialect=self.engine.dialect,
                                                        column_keys=list(columns))
            order = tuple(compiled.positiontup) if compiled.positiontup else None
            found = self._statements[key] = (str(compiled), order)
        return found

    def submit(self, table_name: str, row: dict[str, Any]) -> None:
        self.writer.submit(table_name, row)

    def submit_many(self, table_name: str, rows: list[dict[str, Any]]) -> None:
        self.writer.submit_many(table_name, rows)

    def flush(self) -> None:
        self.writer.flush()

    def _guard(self, action):
        try:
            with self.engine.begin() as conn:
                return action(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"metadata store {self.display_url}: {_short(exc)}") from None

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, *, run_id: str, workflow: str, kind: str = "workflow",
                   params: dict[str, Any] | None = None, ir_json: str | None = None,
                   ir_digest: str | None = None, source_file: str | None = None,
                   code_version: CodeVersion | None = None) -> None:
        """Record a run as running. ``code_version`` (see :func:`amml.store.code_version.detect`)
        says which code produced it; None leaves those columns empty."""
        row = dict(id=run_id, workflow=workflow, kind=kind, status="running",
                   started_at=time.time(), ended_at=None, host=socket.gethostname(),
                   pid=os.getpid(), ir_digest=ir_digest, ir_json=ir_json,
                   source_file=source_file, error=None,
                   **(code_version or CodeVersion()).columns())
        param_rows = [dict(run_id=run_id, key=k, value=json.dumps(v, sort_keys=True))
                      for k, v in (params or {}).items()]

        def action(conn: Connection) -> None:
            conn.execute(insert(schema.runs), [row])
            if param_rows:
                conn.execute(self._insert("params"), param_rows)

        self._guard(action)

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        try:
            self.writer.flush()
        except StoreError as exc:
            # some of the run's rows did not commit: the run still ends (failed, saying why)
            # rather than staying 'running' for ever, and the caller hears of it
            reason = redact_text(str(exc))
            self._guard(lambda conn: conn.execute(
                update(schema.runs).where(schema.runs.c.id == run_id)
                .values(status="failed", ended_at=time.time(), error=reason)))
            raise
        self._guard(lambda conn: conn.execute(
            update(schema.runs).where(schema.runs.c.id == run_id)
            .values(status=status, ended_at=time.time(),
                    error=redact_text(error) if error else error)))  # stored: never a secret

    def mark_interrupted(self) -> list[str]:
        """Runs left 'running' by a dead process on this host become 'interrupted'."""
        if self.read_only:  # a reader leaves that to the next run
            return []
        host = socket.gethostname()
        stale = self._guard(lambda conn: conn.execute(
            select(schema.runs.c.id, schema.runs.c.pid)
            .where(schema.runs.c.status == "running", schema.runs.c.host == host)).all())
        dead = [run_id for run_id, pid in stale if pid != os.getpid() and not _pid_alive(pid)]
        if dead:
            self._guard(lambda conn: conn.execute(
                update(schema.runs).where(schema.runs.c.id.in_(dead))
                .values(status="interrupted", ended_at=time.time(),
                        error="the process running it stopped (killed or crashed)")))
        return dead

    # -- cache ---------------------------------------------------------------------------
    def cache_entries(self, partial_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = sorted(set(partial_keys))
        if not keys:
            return {}
        table = schema.cache_entries
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                rows = conn.execute(
                    select(table.c.cache_key, table.c.outputs, table.c.run_id,
                           table.c.step_name, table.c.partial_key, table.c.created_at)
                    .where(table.c.partial_key.in_(keys[start : start + 500]))).all()
                for key, outputs, run_id, step_name, partial, created in rows:
                    found[key] = {"outputs": json.loads(outputs), "run_id": run_id,
                                  "step_name": step_name, "partial_key": partial,
                                  "created_at": created}
        return found

    # -- queries -------------------------------------------------------------------------
    def _rows(self, statement) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(statement)]
        except SQLAlchemyError as exc:
            raise StoreError(f"metadata store {self.display_url}: {_short(exc)}") from None

    def list_runs(self, *, limit: int = 50, workflow: str | None = None,
                  status: str | None = None) -> list[dict[str, Any]]:
        r = schema.runs
        query = select(r.c.id, r.c.workflow, r.c.kind, r.c.status, r.c.started_at,
                       r.c.ended_at, r.c.error, r.c.code_commit, r.c.code_dirty
                       ).order_by(r.c.started_at.desc()).limit(limit)
        if workflow:
            query = query.where(r.c.workflow == workflow)
        if status:
            query = query.where(r.c.status == status)
        return self._rows(query)

    def get_run(self, run_id: str) -> dict[str, Any]:
        r = schema.runs
        rows = self._rows(select(r).where(r.c.id.like(f"{run_id}%")).limit(2))
        if not rows:
            raise RunNotFoundError(f"no run with id '{run_id}'")
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix '{run_id}' is ambiguous; give more of it")
        return rows[0]

    def code_version(self, run_id: str) -> CodeVersion | None:
        """The code version recorded for run ``run_id`` (the exact id); None: no such run."""
        r = schema.runs
        rows = self._rows(select(r.c.workflow_digest, r.c.code_commit, r.c.code_dirty,
                                 r.c.amml_version).where(r.c.id == run_id))
        return CodeVersion.from_columns(rows[0]) if rows else None

    def run_ir_json(self, run_id: str) -> str | None:
        """The IR recorded for run ``run_id`` (the exact id, an index seek: ``get_run`` takes
        a prefix, a LIKE that scans every run); None: no such run or no IR."""
        r = schema.runs
        rows = self._rows(select(r.c.ir_json).where(r.c.id == run_id))
        return rows[0]["ir_json"] if rows else None

    def run_params(self, run_id: str) -> dict[str, Any]:
        p = schema.params
        return {r["key"]: json.loads(r["value"])
                for r in self._rows(select(p).where(p.c.run_id == run_id))}

    def run_steps(self, run_id: str) -> list[dict[str, Any]]:
        s = schema.steps
        return self._rows(select(s).where(s.c.run_id == run_id).order_by(s.c.started_at))

    def find_artifacts(self, prefix: str) -> list[dict[str, Any]]:
        a = schema.artifacts
        return self._rows(select(a).where(a.c.digest.like(f"{prefix}%")).limit(5))

    def edges_for_artifacts(self, digests: Sequence[str]) -> list[dict[str, Any]]:
        lin, st = schema.lineage, schema.steps
        query = (select(lin.c.run_id, lin.c.step_name, lin.c.direction, lin.c.port,
                        lin.c.artifact_digest, st.c.op, st.c.status, st.c.started_at)
                 .join(st, (st.c.run_id == lin.c.run_id) & (st.c.name == lin.c.step_name))
                 .where(lin.c.artifact_digest.in_(list(digests)))
                 .order_by(st.c.started_at))
        return self._rows(query)

    def edges_for_steps(self, steps: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        if not steps:
            return []
        lin = schema.lineage
        condition = or_(*[(lin.c.run_id == r) & (lin.c.step_name == s) for r, s in steps])
        return self._rows(select(lin).where(condition).order_by(lin.c.id))

    def latest_step(self, step_name: str) -> dict[str, Any] | None:
        s = schema.steps
        rows = self._rows(select(s).where(s.c.name == step_name)
                          .order_by(s.c.started_at.desc()).limit(1))
        return rows[0] if rows else None

    def artifact_info(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        a = schema.artifacts
        return {r["digest"]: r for r in self._rows(select(a).where(a.c.digest.in_(
            list(digests))))}

    def close(self) -> None:
        self.writer.close()
        with self._sync_lock:
            if self._sync_conn is not None:
                self._sync_conn.close()
                self._sync_conn = None
        self.engine.dispose()


def known_revisions() -> set[str]:
    """Every revision this code's migrations know (to tell 'behind' from 'newer')."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _read_only_sqlite_url(path: Path) -> str:
    """A URI filename opened with ``mode=ro``: SQLite itself refuses writes (the file's bytes
    never change; it may leave ``-wal``/``-shm`` side files, as any WAL reader does)."""
    from urllib.parse import quote

    return f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA query_only=ON")  # also covers the in-memory empty store
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def encode_metric_rows(rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """Metric rows as stored: a NaN or +-Inf value becomes NULL with its ``value_kind``.

    Every row of a batch then has the same columns (one executemany); a batch of finite
    values, the usual case, passes through untouched.
    """
    if all(math.isfinite(row["value"]) for row in rows):
        return rows
    encoded = []
    for row in rows:
        value = float(row["value"])
        if math.isfinite(value):
            encoded.append({**row, "value": value, "value_kind": None})
        else:
            kind = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            encoded.append({**row, "value": None, "value_kind": kind})
    return encoded


def decode_metric_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored metric rows back as floats: ``value_kind`` turns NULL into nan, inf or -inf."""
    for row in rows:
        kind = row.pop("value_kind", None)
        if kind is not None:
            row["value"] = float(kind)
    return rows


def _short(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact_text(message[0]) if message else type(exc).__name__
