"""The ``prediction_log`` table: every request a model server answered, written in batches.

A batch is one ``executemany`` of an INSERT compiled once, with plain tuples: building
SQLAlchemy statements for a few hundred rows costs tens of milliseconds of Python, and the
writer thread would hold the GIL the server's event loop needs meanwhile. The drift
monitoring reads this table.

>>> import tempfile
>>> from amml.store import open_store
>>> store = open_store(tempfile.mkdtemp())
>>> table = PredictionLogTable(store)
>>> table.append([dict(model="oil", version=1, endpoint="forecast", received_at=0.0,
...                    latency_ms=1.5, status=200, request="{}", response="{}")])
>>> store.close()
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from amml.store import Store
from amml.store.metadata.schema import prediction_log

COLUMNS = ("model", "version", "endpoint", "received_at", "latency_ms", "status", "request",
           "response")


class PredictionLogTable:
    """Appends rows (dicts keyed by :data:`COLUMNS`) to the store's prediction log."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._compiled: tuple[str, tuple[str, ...] | None] | None = None

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` in one transaction (raises what the database raises)."""
        sql, order = self._statement()
        params = ([tuple(row[k] for k in order) for row in rows] if order else rows)
        with self.store.metadata.engine.begin() as conn:
            conn.exec_driver_sql(sql, params)

    def _statement(self) -> tuple[str, tuple[str, ...] | None]:
        if self._compiled is None:
            compiled = insert(prediction_log).compile(dialect=self.store.metadata.engine.dialect,
                                                      column_keys=list(COLUMNS))
            order = tuple(compiled.positiontup) if compiled.positiontup else None
            self._compiled = (str(compiled), order)
        return self._compiled
