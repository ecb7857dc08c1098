"""``sink.sql``: write a time-indexed table into a database table.

Used to stage data (the oil-temperature example loads its CSV into SQL, then extracts it with
``source.sql``) or to publish forecasts. ``if_exists``: ``replace`` (default), ``append`` or
``fail``. The step re-runs when its input changes or when the target table no longer holds
what it wrote (its row count is part of the cache key).

PostgreSQL is written with ``COPY ... FROM STDIN`` (psycopg 3), as ``source.sql`` reads it:
one stream, no limit on rows. SQLite and MySQL/MariaDB take the driver's executemany; other
servers multi-row INSERTs in chunks small enough for their bound-parameter limit (65,535 in
PostgreSQL: 10,000 rows of 8 columns in one statement is refused). A relative SQLite path
(``sqlite:///ett.db``) is the workflow file's folder's, and its parent folder is created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml._lazy import sqlalchemy as sa
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.paths import sqlite_file
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, host_port, redact
from amml.ops.sources.sql import engine_for

#: Bound parameters one statement may carry, by SQLAlchemy dialect name (servers not listed:
#: the common 65,535 of a 16-bit count).
PARAMETER_LIMITS = {"postgresql": 65_535, "mysql": 65_535, "mariadb": 65_535, "mssql": 2_100,
                    "oracle": 65_535}
#: A database's message can quote a whole statement (megabytes of values): cut to this.
MESSAGE_CHARS = 300


@register
class SqlSink(Op):
    name = "sink.sql"
    inputs = {"data": Input("table")}
    outputs = {"report": "json"}
    path_fields: ClassVar[dict[str, str]] = {"url": "sqlite_url"}
    writes_what_it_reads = True

    class Config(ConnectionConfig, OpConfig):
        table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
        if_exists: Literal["replace", "append", "fail"] = "replace"
        index_label: str | None = None
        chunk_size: int = Field(10_000, ge=1)

    def source_state(self) -> str | None:
        url = self.config.resolve_url()
        database = sqlite_file(url)
        if database is not None and not Path(database).exists():
            # not written yet (connecting would fail while its folder is missing): a known
            # state, so the step is also cached under the state its write leaves behind
            return "absent"
        engine = engine_for(url)
        schema, _, name = self.config.table.rpartition(".")
        try:
            if not sa.inspect(engine).has_table(name, schema=schema or None):
                return "absent"
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT count(*) FROM {self.config.table}")).scalar()
        except sa.exc.SQLAlchemyError:
            return None  # cannot tell: write again
        return json.dumps({"rows": int(rows)})

    def run(self, ctx: StepContext, data: pd.DataFrame) -> dict[str, Any]:
        table = data
        c = self.config
        url = c.resolve_url()
        database = sqlite_file(url)
        if database is not None:  # SQLite creates the file, not the folder it goes in
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = engine_for(url)
        label = c.index_label or table.index.name or "time"
        try:
            _write(engine, table, c.table, label, c.if_exists, c.chunk_size)
        except Exception as exc:  # drivers and pandas raise their own types (pandas' are
            # not SQLAlchemy's): every one becomes a short OpError naming the table
            raise OpError(f"sink.sql: writing {c.table} at {host_port(url)} failed: "
                          f"{short_message(exc)}") from None
        ctx.log_metric("rows_written", len(table))
        return {"report": {"table": c.table, "rows": len(table), "columns": list(table.columns),
                           "index_label": label, "if_exists": c.if_exists}}


def _write(engine: Any, table: pd.DataFrame, target: str, label: str, if_exists: str,
           chunk_size: int) -> None:
    schema, _, name = target.rpartition(".")
    dialect = engine.dialect.name
    if dialect == "postgresql" and _copy_postgres(engine, table, schema or None, name, label,
                                                  if_exists):
        return
    # SQLite and MySQL/MariaDB are fastest with plain executemany (pysqlite binds row by row;
    # PyMySQL folds the rows into multi-row INSERTs client-side, 4x faster than pandas' and
    # bound by statement size, not parameters); other servers take multi-row INSERTs of at
    # most their limit's worth of parameters
    method = None if dialect in ("sqlite", "mysql", "mariadb") else "multi"
    if method == "multi":
        width = len(table.columns) + 1  # the index is a column too
        chunk_size = max(1, min(chunk_size, PARAMETER_LIMITS.get(dialect, 65_535) // width))
    table.to_sql(name, engine, schema=schema or None, if_exists=if_exists, index=True,
                 index_label=label, chunksize=chunk_size, method=method)


def _copy_postgres(engine: Any, table: pd.DataFrame, schema: str | None, name: str,
                   label: str, if_exists: str) -> bool:
    """Create the table as pandas would (types, replace/fail/append), then COPY the rows in,
    all in one transaction. False when the driver has no COPY (psycopg2): INSERT instead."""
    with engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        if not hasattr(cursor, "copy"):
            return False
        table.head(0).to_sql(name, conn, schema=schema, if_exists=if_exists, index=True,
                             index_label=label)
        frame = table.reset_index()
        frame.columns = [label, *map(str, table.columns)]
        columns = ", ".join(_quote(column) for column in frame.columns)
        where = f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)
        # object dtype with None for every missing value: psycopg adapts Python values, and
        # a NaN or NaT becomes NULL, as pandas' INSERT writes it
        values = frame.astype(object).where(frame.notna(), None)
        with cursor.copy(f"COPY {where} ({columns}) FROM STDIN") as copy:
            for row in values.itertuples(index=False, name=None):
                copy.write_row(row)
    return True


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def short_message(exc: BaseException) -> str:
    """The first line of the driver's message, at most :data:`MESSAGE_CHARS`, redacted.

    SQLAlchemy and pandas append (or prepend) the statement and its parameters; neither is
    shown: the statement holds the data being written.
    """
    cause: BaseException = exc
    for _ in range(8):  # pandas wraps SQLAlchemy's error, which wraps the driver's (orig)
        inner = getattr(cause, "orig", None) or cause.__cause__
        if not isinstance(inner, BaseException):
            break
        cause = inner
    text = str(cause).strip()
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    first = first.split("[SQL:")[0].strip()
    if len(first) > MESSAGE_CHARS:
        first = first[:MESSAGE_CHARS] + f"... ({len(first) - MESSAGE_CHARS} more characters)"
    return redact(first)
