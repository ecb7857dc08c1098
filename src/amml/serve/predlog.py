"""Every request and prediction, logged to the store's ``prediction_log`` table off the hot
path: a request appends a tuple to a list; a background thread turns the list into rows
every ``interval`` seconds and commits them in one transaction through
:class:`amml.store.prediction_log.PredictionLogTable` (one ``executemany`` of a statement
compiled once, so the thread spends almost no time in Python holding the GIL the event loop
needs). The drift monitoring reads this table.

A JSON request is logged as sent; a CSV or Arrow one as the JSON of its parsed windows; a
table a fitted detector scored at every row (:class:`SlidTable`) as its rows with the
look-back they were slid by (``{"columns", "window", "timestamps", "slide"}``: readers slide
them again with :func:`amml.store.served.unslid`). A request over ``max_bytes`` is logged as
a summary (its shape and per-column means).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from amml.store import Store
from amml.store.prediction_log import PredictionLogTable

log = logging.getLogger("amml.serve")
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class SlidTable:
    """A table ``/detect`` read as every window of ``lookback`` rows in it: its ``rows``
    ``(rows, columns)`` as sent, in the model's column order, and their ``times`` (or None)."""

    rows: np.ndarray
    times: Any
    lookback: int


class PredictionLog:
    def __init__(self, store: Store, interval: float = 0.25, max_bytes: int = MAX_BYTES,
                 enabled: bool = True) -> None:
        self.store, self.interval, self.max_bytes = store, interval, max_bytes
        self.enabled = enabled
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self._table = PredictionLogTable(store)

    def add(self, model: str, version: int, endpoint: str, received_at: float,
            latency_ms: float, status: int, request: Any, response: bytes,
            columns: tuple[str, ...] = ()) -> None:
        if self.enabled:
            self._pending.append((model, version, endpoint, received_at, latency_ms, status,
                                  request, response, columns))  # list.append is atomic

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="amml-serve-log",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()

    def flush(self, wait: bool = True) -> int:
        """Write everything logged so far (``wait`` is kept for callers: writing is always
        finished when this returns)."""
        with self._lock:
            pending, self._pending = self._pending, []
            if not pending:
                return 0
            rows = [self._row(*entry) for entry in pending]
            try:
                self._table.append(rows)
            except Exception as exc:  # a full disk must not take serving down
                self.dropped += len(rows)
                log.error("amml serve: prediction log: %s", exc)
        return len(rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush(wait=False)
            except Exception as exc:
                log.error("amml serve: prediction log: %s", exc)

    def _row(self, model: str, version: int, endpoint: str, received_at: float,
             latency_ms: float, status: int, request: Any, response: bytes,
             columns: tuple[str, ...]) -> dict[str, Any]:
        if isinstance(request, np.ndarray):
            text = self._array_text(request, columns)
        elif isinstance(request, SlidTable):
            text = self._table_text(request, columns)
        elif isinstance(request, bytes):
            text = (request.decode("utf-8", "replace") if len(request) <= self.max_bytes
                    else json.dumps({"truncated": True, "bytes": len(request)}))
        else:
            text = json.dumps(request)
        answer = response.decode("utf-8", "replace")
        if len(answer) > self.max_bytes:
            answer = json.dumps({"truncated": True, "bytes": len(response)})
        return dict(model=model, version=int(version), endpoint=endpoint,
                    received_at=received_at, latency_ms=latency_ms, status=status,
                    request=text, response=answer)

    def _table_text(self, table: SlidTable, columns: tuple[str, ...]) -> str:
        rows = table.rows
        if rows.size * 20 + (0 if table.times is None else 30 * len(rows)) <= self.max_bytes:
            body: dict[str, Any] = {"columns": list(columns), "window": rows.tolist(),
                                    "slide": table.lookback}
            if table.times is not None:
                body["timestamps"] = [t.isoformat() for t in table.times]
            return json.dumps(body)
        return _summary(rows, columns, slide=table.lookback)

    def _array_text(self, windows: np.ndarray, columns: tuple[str, ...]) -> str:
        if windows.size * 20 <= self.max_bytes:
            return json.dumps({"columns": list(columns), "windows": windows.tolist()})
        return _summary(windows, columns)


def _summary(values: np.ndarray, columns: tuple[str, ...], **extra: Any) -> str:
    """A body too large to log: its shape and each column's mean (the last axis)."""
    means = np.nanmean(values.reshape(-1, values.shape[-1]), axis=0).tolist()
    return json.dumps({"truncated": True, "shape": list(values.shape), **extra,
                       "columns": list(columns),
                       "mean": dict(zip(columns, means, strict=False))})
