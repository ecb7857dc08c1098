"""The ``fleet_reports`` table: what each federated client said about itself, round by round.

Every reply a client sends in a federated round carries a health report (CPU and memory use,
its row count, how many rows are new since the last round, the time of its newest row, its
local loss, the model version it trained from). The ServerApp appends one row per report;
``amml federated fleet``, the Prometheus export and the dashboard read the newest row per
client. Migration ``0008_fleet`` creates the table.

>>> import tempfile
>>> from amml.store import open_store
>>> store = open_store(tempfile.mkdtemp())
>>> fleet = FleetTable(store)
>>> fleet.append([dict(federation="air", client="a", node_id="7", run_id="1", round=1,
...                    reported_at=10.0, status="ok", rows=100, local_loss=0.5)])
>>> [(r["client"], r["rows"], r["status"]) for r in fleet.latest("air")]
[('a', 100, 'ok')]
>>> store.close()
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    and_,
    func,
    insert,
    select,
)

from amml.store import Store
from amml.store.metadata.schema import BigId, metadata

fleet_reports = Table(
    "fleet_reports",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("federation", String(200), nullable=False),
    Column("client", String(200), nullable=False),
    Column("node_id", String(32), nullable=False),  # Flower's node ids are unsigned 64-bit
    Column("run_id", String(32), nullable=False),
    Column("round", Integer, nullable=False),
    Column("reported_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # ok | error | missing
    Column("cpu_percent", Float),
    Column("memory_mb", Float),
    Column("rows", BigInteger),
    Column("new_rows", BigInteger),
    Column("newest_row_at", Float),  # the time of the client's newest row (data freshness)
    Column("local_loss", Float),
    Column("model_version", Integer),
    Column("error", String(500)),
    Index("ix_fleet_reports_client", "federation", "client", "reported_at"),
)

COLUMNS = tuple(c.name for c in fleet_reports.columns if c.name != "id")


class FleetTable:
    """Append health reports and read the newest one per client."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.metadata.engine

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` (dicts keyed by :data:`COLUMNS`; missing health fields are NULL)."""
        if not rows:
            return
        full = [{name: row.get(name) for name in COLUMNS} for row in rows]
        with self.engine.begin() as conn:
            conn.execute(insert(fleet_reports), full)

    def latest(self, federation: str | None = None) -> list[dict[str, Any]]:
        """The newest report of every client (of one federation, or of all), by name."""
        t = fleet_reports
        newest = select(t.c.federation, t.c.client, func.max(t.c.id).label("id")) \
            .group_by(t.c.federation, t.c.client)
        if federation is not None:
            newest = newest.where(t.c.federation == federation)
        sub = newest.subquery()
        query = select(t).join(sub, and_(t.c.id == sub.c.id)) \
            .order_by(t.c.federation, t.c.client)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def history(self, federation: str, client: str | None = None, limit: int = 1000
                ) -> list[dict[str, Any]]:
        """Reports newest first (of one client, or every client of the federation)."""
        t = fleet_reports
        query = select(t).where(t.c.federation == federation)
        if client is not None:
            query = query.where(t.c.client == client)
        query = query.order_by(t.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def federations(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(fleet_reports.c.federation).distinct()
                                               .order_by(fleet_reports.c.federation))]
