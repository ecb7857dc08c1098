"""``source.sql``: a time series from SQLite, PostgreSQL or MariaDB/MySQL via SQLAlchemy.

Read a ``table`` (with ``time`` and ``columns``) or any ``query``; restrict to
``start``/``end``. Extraction is **incremental**: the step's cache key includes the row count
and newest timestamp (cheap, index-friendly), so new rows make the step run again, and that
run reads only rows newer than its previous output's last timestamp and appends them. Rows
that arrive late (older than that watermark) are noticed by the count and trigger a full
re-read, reported in the ``report`` output.

PostgreSQL is read with ``COPY ... TO STDOUT`` parsed by Arrow (several times faster than
``pandas.read_sql``); other databases stream in chunks of ``chunk_size`` rows through a
server-side cursor, so a big table never sits in the driver twice.

.. code-block:: yaml

    readings:
      op: source.sql
      with: {url_env: WAREHOUSE_URL, table: readings, time: ts,
             columns: [temperature, load], start: "2024-01-01"}
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml._lazy import sqlalchemy as sa
from amml._urls import encode_userinfo
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, host_port, redact
from amml.ops.sources.quality import finish_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import SQLAlchemyError

_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One pooled engine per database URL, shared by the SQL source and sink."""
    engine = _engines.get(url)
    if engine is None:
        try:
            # re-encoded user-info: SQLAlchemy then reads the password this check and
            # redaction saw (an unescaped '@' or ':' in it would otherwise move the host)
            engine = sa.create_engine(encode_userinfo(url), pool_pre_ping=True)
            _engines[url] = engine
        except ImportError as exc:
            raise OpError(f"the database driver is missing ({exc}): "
                          "pip install 'amml[sources]'") from None
        except Exception as exc:
            raise OpError(f"invalid database URL {redact(url)}: {redact(str(exc))}") from None
    return engine


class SqlConfig(ConnectionConfig, OpConfig):
    table: str | None = None
    query: str | None = None
    time: str
    columns: list[str] | None = None
    start: str | None = None
    end: str | None = None
    tz: str | None = None
    incremental: bool = True
    chunk_size: int = Field(50_000, ge=100)
    on_bad_rows: Literal["error", "quarantine"] = "error"
    dedupe: Literal["error", "last", "first", "mean"] = "error"

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


@register
class SqlSource(Op):
    name = "source.sql"
    # wait_for: any step that must finish first (e.g. the sink.sql that loads the table)
    inputs = {"wait_for": Input("any", required=False)}
    outputs = {"out": "table", "report": "json"}
    Config = SqlConfig
    incremental = True
    #: a relative SQLite file (sqlite:///x.db) is the workflow file's folder's
    path_fields = {"url": "sqlite_url"}

    # -- building the query ----------------------------------------------------------------
    def _base(self):
        """(selectable, its time column, the value columns or None for all)."""
        c = self.config
        names = [c.time, *(c.columns or [])]
        if c.table is not None:
            schema, _, name = c.table.rpartition(".")
            source = sa.table(name, *[sa.column(n) for n in names], schema=schema or None)
        else:
            source = sa.text(c.query).columns(*[sa.column(n) for n in names]).subquery("q")
        values = [source.c[n] for n in c.columns] if c.columns else None
        return source, source.c[c.time], values

    def _select(self, after: pd.Timestamp | None = None):
        source, time_col, values = self._base()
        picked = [time_col, *values] if values is not None else [sa.literal_column("*")]
        statement = sa.select(*picked).select_from(source)
        for condition in self._range(time_col, after):
            statement = statement.where(condition)
        return statement.order_by(time_col)

    def _range(self, time_col, after: pd.Timestamp | None = None) -> list[Any]:
        c = self.config
        conditions = []
        if c.start:
            conditions.append(time_col >= _bound(c.start))
        if c.end:
            conditions.append(time_col < _bound(c.end))
        if after is not None:
            conditions.append(time_col > after.to_pydatetime())
        return conditions

    def _engine(self) -> tuple[Engine, str]:
        url = self.config.resolve_url()
        return engine_for(url), url

    # -- cache state -----------------------------------------------------------------------
    def _stats(self, engine: Engine, upto: pd.Timestamp | None = None) -> tuple[int, Any]:
        source, time_col, _ = self._base()
        statement = sa.select(sa.func.count(), sa.func.max(time_col)).select_from(source)
        for condition in self._range(time_col):
            statement = statement.where(condition)
        if upto is not None:
            statement = statement.where(time_col <= upto.to_pydatetime())
        with engine.connect() as conn:
            count, newest = conn.execute(statement).one()
        return int(count), newest

    def source_state(self) -> str | None:
        engine, url = self._engine()
        try:
            count, newest = self._stats(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise OpError(_describe(exc, url)) from None
        return json.dumps({"rows": count, "newest": str(newest)})

    # -- reading ---------------------------------------------------------------------------
    def run(self, ctx: StepContext, wait_for: Any = None) -> dict[str, Any]:
        c = self.config
        engine, url = self._engine()
        previous = ctx.previous("out") if c.incremental else None
        watermark = None
        note = None
        if previous is not None and len(previous):
            watermark = _as_utc_naive(previous.index.max())
            try:
                seen, _ = self._stats(engine, upto=watermark)
            except sa.exc.SQLAlchemyError as exc:
                raise OpError(_describe(exc, url)) from None
            if seen != len(previous):
                note = (f"{seen - len(previous)} rows arrived at or before the previous "
                        "watermark: read everything again")
                previous, watermark = None, None
        try:
            raw = self._read(engine, self._select(after=watermark))
        except sa.exc.SQLAlchemyError as exc:
            raise OpError(_describe(exc, url)) from None
        rows_read = len(raw)
        ctx.log_metric("rows_read", rows_read)
        source = f"source.sql {c.table or 'query'} at {host_port(url)}"
        if rows_read == 0 and previous is not None:
            frame, report = previous, {"source": source, "rows_read": 0, "bad_rows": 0,
                                       "problems": {}, "notes": {}}
        else:
            frame, report = finish_table(raw, time=c.time, on_bad_rows=c.on_bad_rows,
                                         source=source, dedupe=c.dedupe)
            frame.index = _utc_index(frame.index, c.tz)
            if previous is not None:
                frame = pd.concat([previous, frame])
        report["incremental"] = {"watermark": str(watermark) if watermark is not None else None,
                                 "previous_rows": 0 if previous is None else len(previous),
                                 "new_rows": rows_read}
        if note:
            report["notes"]["late_rows"] = note
        report["rows_kept"] = len(frame)
        ctx.log_metric("rows", len(frame))
        return {"out": frame, "report": report}

    def _read(self, engine: Engine, statement) -> pd.DataFrame:
        if engine.dialect.name == "postgresql":
            return self._copy_postgres(engine, statement)
        chunks = []
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True,
                                            yield_per=self.config.chunk_size).execute(statement)
            names = list(result.keys())
            for partition in result.partitions():
                chunks.append(pd.DataFrame.from_records(partition, columns=names))
        if not chunks:
            return pd.DataFrame(columns=names)
        return pd.concat(chunks, ignore_index=True)

    def _copy_postgres(self, engine: Engine, statement) -> pd.DataFrame:
        import pyarrow.csv as pacsv

        compiled = statement.compile(dialect=engine.dialect)
        params = compiled.params
        sql = str(compiled)
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            buffer = io.BytesIO()
            with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER true)",
                             params) as copy:
                for block in copy:
                    buffer.write(block)
            conn.rollback()
        buffer.seek(0)
        if buffer.getbuffer().nbytes == 0:
            return pd.DataFrame()
        return pacsv.read_csv(buffer).to_pandas()


def _bound(text_value: str) -> Any:
    stamp = pd.Timestamp(text_value)
    return _as_utc_naive(stamp).to_pydatetime()


def _as_utc_naive(stamp: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _utc_index(index: pd.DatetimeIndex, tz: str | None) -> pd.DatetimeIndex:
    """Naive UTC (or ``tz``-aware) timestamps, whatever the database's column type."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    index = index.as_unit("ns")
    if tz is not None:
        index = index.tz_localize("UTC").tz_convert(tz)
    return pd.DatetimeIndex(index, name=index.name)


def _describe(exc: SQLAlchemyError, url: str) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return f"source.sql: database at {host_port(url)} failed: {redact(message)}"
