"""Drift records: the events ``amml monitor`` raises and the scores it computes per window.

``drift_events``: one row per alarm: the model and version watched, the detector, when it
was raised (``detected_at``, epoch seconds of the observation that raised it) and when the
drift is estimated to have begun (``drift_point``, also epoch seconds), the confidence, the
detector's score and threshold, the features it names and the details (JSON).
``drift_scores``: every scored window's value per detector, for the timeline that ``amml
drift report`` draws. Migration 0006 creates both.

>>> import tempfile
>>> from amml.store import open_store
>>> with open_store(tempfile.mkdtemp()) as store:
...     records = DriftRecords(store)
...     records.add_event(model="oil", version=1, detector="attribution", detected_at=20.0,
...                       drift_point=12.0, confidence=0.99, score=1.0, threshold=1.0,
...                       features=["OT:lags 1-42"], details={"exceedances": 7})
...     [(e["detector"], e["drift_point"], e["features"]) for e in records.events("oil")]
[('attribution', 12.0, ['OT:lags 1-42'])]
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, insert, select

from amml.store.metadata.schema import BigId, metadata

drift_events = Table(
    "drift_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("detector", String(64), nullable=False),
    Column("detected_at", Float, nullable=False),  # epoch seconds of the alarming observation
    Column("drift_point", Float, nullable=False),  # epoch seconds: when the drift began
    Column("confidence", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("features", Text, nullable=False),  # JSON list
    Column("details", Text, nullable=False),  # JSON object
    Column("recorded_at", Float, nullable=False),
    Index("ix_drift_events_model", "model", "detected_at"),
)

drift_scores = Table(
    "drift_scores",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("detector", String(64), nullable=False),
    Column("at", Float, nullable=False),  # epoch seconds of the scored observation
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Index("ix_drift_scores_model", "model", "at"),
)


class DriftRecords:
    """Reads and writes the two tables of one store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def add_event(self, *, model: str, version: int, detector: str, detected_at: float,
                  drift_point: float, confidence: float, score: float, threshold: float,
                  features: Iterable[str] = (), details: dict[str, Any] | None = None) -> None:
        row = dict(model=model, version=int(version), detector=detector,
                   detected_at=float(detected_at), drift_point=float(drift_point),
                   confidence=float(confidence), score=float(score),
                   threshold=float(threshold), features=json.dumps(list(features)),
                   details=json.dumps(details or {}, default=float), recorded_at=time.time())
        with self.store.metadata.engine.begin() as conn:
            conn.execute(insert(drift_events), [row])

    def add_scores(self, rows: list[dict[str, Any]]) -> None:
        """Rows of ``model, version, detector, at, score, threshold``, in one transaction."""
        if rows:
            with self.store.metadata.engine.begin() as conn:
                conn.execute(insert(drift_scores), rows)

    def events(self, model: str | None = None, since: float | None = None
               ) -> list[dict[str, Any]]:
        query = select(drift_events).order_by(drift_events.c.detected_at, drift_events.c.id)
        if model is not None:
            query = query.where(drift_events.c.model == model)
        if since is not None:
            query = query.where(drift_events.c.detected_at >= since)
        with self.store.metadata.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "features": json.loads(row["features"]),
                 "details": json.loads(row["details"])} for row in rows]

    def scores(self, model: str) -> list[dict[str, Any]]:
        query = (select(drift_scores).where(drift_scores.c.model == model)
                 .order_by(drift_scores.c.at, drift_scores.c.id))
        with self.store.metadata.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]
