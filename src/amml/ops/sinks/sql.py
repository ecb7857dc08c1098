"""``sink.sql``: write a time-indexed table into a database table.

Used to stage data (the oil-temperature example loads its CSV into SQL, then extracts it with
``source.sql``) or to publish forecasts. ``if_exists``: ``replace`` (default), ``append`` or
``fail``. The step re-runs when its input changes or when the target table no longer holds
what it wrote (its row count is part of the cache key).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml._lazy import sqlalchemy as sa
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, host_port, redact
from amml.ops.sources.sql import engine_for


@register
class SqlSink(Op):
    name = "sink.sql"
    inputs = {"data": Input("table")}
    outputs = {"report": "json"}

    class Config(ConnectionConfig, OpConfig):
        table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
        if_exists: Literal["replace", "append", "fail"] = "replace"
        index_label: str | None = None
        chunk_size: int = Field(10_000, ge=1)

    def source_state(self) -> str | None:
        engine = engine_for(self.config.resolve_url())
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
        engine = engine_for(url)
        schema, _, name = c.table.rpartition(".")
        label = c.index_label or table.index.name or "time"
        try:
            # multi-row INSERTs help servers; SQLite is fastest with plain executemany
            method = None if engine.dialect.name == "sqlite" else "multi"
            table.to_sql(name, engine, schema=schema or None, if_exists=c.if_exists,
                         index=True, index_label=label, chunksize=c.chunk_size, method=method)
        except (sa.exc.SQLAlchemyError, ValueError) as exc:
            message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise OpError(f"sink.sql: writing {c.table} at {host_port(url)} failed: "
                          f"{redact(message)}") from None
        ctx.log_metric("rows_written", len(table))
        return {"report": {"table": c.table, "rows": len(table), "columns": list(table.columns),
                           "index_label": label, "if_exists": c.if_exists}}
