"""Group commit: rows queue up while the previous batch commits, then go in one transaction.

The engine and the tracking API never wait for the database on the hot path; ``flush()``
waits until everything submitted so far is durable in the store. When steps are slow each
batch holds one step's rows and commits at once; when they are fast (a cached re-run) many
steps share one commit.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from amml._exceptions import StoreError
from amml.store.metadata.schema import WRITE_ORDER

Row = dict[str, Any]


class GroupCommitWriter:
    def __init__(self, engine: Engine, write_batch: Callable[[Any, dict[str, list[Row]]], None]):
        self._engine = engine
        self._write_batch = write_batch
        self._pending: list[tuple[str, Row]] = []
        self._cond = threading.Condition()
        self._submitted = 0
        self._committed = 0
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, table: str, row: Row) -> None:
        with self._cond:
            self._check()
            self._pending.append((table, row))
            self._submitted += 1
            self._start()
            self._cond.notify_all()

    def submit_many(self, table: str, rows: list[Row]) -> None:
        if not rows:
            return
        with self._cond:
            self._check()
            self._pending.extend((table, row) for row in rows)
            self._submitted += len(rows)
            self._start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = 60.0) -> None:
        with self._cond:
            target = self._submitted
            ok = self._cond.wait_for(lambda: self._committed >= target or self._error,
                                     timeout=timeout)
            self._check()
            if not ok:
                raise StoreError(f"metadata writes did not commit within {timeout} s")

    def close(self) -> None:
        if self._thread is None:
            return
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self._thread = None
        self._closed = False

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            # the driver's first line only: SQLAlchemy's full text repeats the SQL and every
            # parameter of the batch (thousands of values, and whatever the rows held)
            lines = str(getattr(error, "orig", None) or error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            raise StoreError(f"writing metadata failed: {reason}") from None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="amml-store-writer",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending and self._closed:
                    return
                batch, self._pending = self._pending, []
            grouped: dict[str, list[Row]] = defaultdict(list)
            for table, row in batch:
                grouped[table].append(row)
            ordered = {t: grouped[t] for t in WRITE_ORDER if t in grouped}
            ordered.update({t: rows for t, rows in grouped.items() if t not in ordered})
            try:
                with self._engine.begin() as conn:
                    self._write_batch(conn, ordered)
            except BaseException as exc:  # surfaced to the caller on the next flush
                with self._cond:
                    self._error = exc
                    self._committed += len(batch)
                    self._cond.notify_all()
                continue
            with self._cond:
                self._committed += len(batch)
                self._cond.notify_all()
