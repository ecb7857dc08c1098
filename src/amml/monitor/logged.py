"""What the server served: the prediction log's rows as windows and what was answered.

A logged request is what the client sent (JSON: ``window``, ``series`` or a ``windows``
batch, with optional ``columns``; CSV and Arrow bodies were logged as the JSON of their
parsed windows) and its answer: a forecaster's ``forecast`` (or ``forecasts``), a fitted
detector's ``score`` (or ``results``, each with its ``score``: read as the one output
``score``). Rows that are not a successful answer, and bodies logged only as a summary (too
large), are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from amml.store import Store
from amml.store.metadata.schema import prediction_log
from amml.store.served import unslid


@dataclass(frozen=True)
class LoggedWindow:
    """One window the server forecast: ``window`` ``(lookback, columns)`` and ``forecast``
    ``(horizon, outputs)`` in original units, with the log row's id, version and time."""

    row_id: int
    version: int
    at: float
    window: np.ndarray
    forecast: np.ndarray


def _window(item: Any, columns: list[str], given: list[str] | None) -> np.ndarray | None:
    if isinstance(item, dict):
        given = item.get("columns", given)
        if "series" in item and isinstance(item["series"], dict):
            series = item["series"]
            if not all(c in series for c in columns):
                return None
            return np.column_stack([np.asarray(series[c], dtype=np.float64) for c in columns])
        item = item.get("window")
    array = np.asarray(item, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if given is not None:
        names = [str(c) for c in given]
        if not all(c in names for c in columns):
            return None
        array = array[:, [names.index(c) for c in columns]]
    return array


def parse_logged(request: str, response: str, columns: list[str], outputs: list[str]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(window, forecast)`` pairs of one logged answer (empty if it cannot be read): the
    forecast ``(horizon, outputs)``, or a detector's score as ``(1, 1)`` (outputs
    ``("score",)``)."""
    try:
        body, answer = unslid(json.loads(request)), json.loads(response)
    except ValueError:
        return []
    if not isinstance(body, dict) or body.get("truncated") or not isinstance(answer, dict):
        return []
    given = body.get("columns")
    try:
        if "windows" in body:
            windows = [_window(item, columns, given) for item in body["windows"]]
            forecasts = answer.get("forecasts", answer.get("results", []))
        else:
            windows = [_window(body, columns, given)]
            # a detector's single answer holds its result's fields (``score``) itself
            forecasts = [answer.get("forecast", answer)]
        pairs = []
        for window, forecast in zip(windows, forecasts, strict=False):
            if window is None or not isinstance(forecast, dict):
                continue
            y = np.column_stack([np.asarray(forecast[o], dtype=np.float64) for o in outputs])
            if window.shape[1] == len(columns) and np.isfinite(window).all():
                pairs.append((window, y))
        return pairs
    except (ValueError, TypeError, KeyError, IndexError):
        return []


def read_logged(store: Store, model: str, columns: list[str], outputs: list[str], *,
                after_id: int = 0, limit: int = 5000) -> tuple[list[LoggedWindow], int]:
    """Successful forecasts of ``model`` logged after row ``after_id``, oldest first, and
    the last row id read."""
    query = (select(prediction_log).where(prediction_log.c.model == model,
                                          prediction_log.c.id > after_id)
             .order_by(prediction_log.c.id).limit(limit))
    with store.metadata.engine.connect() as conn:
        rows = conn.execute(query).all()
    out: list[LoggedWindow] = []
    for row in rows:
        if row.endpoint != "forecast" or row.status != 200:
            continue
        for window, forecast in parse_logged(row.request, row.response, columns, outputs):
            out.append(LoggedWindow(row.id, row.version, row.received_at, window, forecast))
    return out, (rows[-1].id if rows else after_id)
