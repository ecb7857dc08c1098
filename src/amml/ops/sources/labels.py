"""``source.labels``: the labels people gave (``POST /v1/labels/{id}``, ``amml labels``,
Label Studio imports) as a 0/1 column, for ``detect`` in ``threshold: {kind: labels}`` mode
and for training sets.

The latest label version of every labelled task counts. A label in ``positive`` (default
``anomaly``) marks its rows 1, one in ``negative`` (default ``normal``) marks them 0; other
classes are left out. A label covers its task's time range, or its regions (a ``normal``
task with an ``anomaly`` region marks the region 1 and the rest of the range 0). Rows no
label covers are NaN: unlabelled, which ``detect`` leaves out of its threshold search.

With a ``table`` input the column is added to that table (its time index); without one the
rows are a ``freq`` grid over the labelled time (or, with no ``freq``, the labels' own start
and end times). ``series`` keeps the labels about one data column (and those about the
whole model). The store read is the workflow's own unless ``store`` or ``store_url`` names
another.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.served_store import (
    is_relative,
    moment,
    opened_store,
    own_store_state,
    store_state,
)


@register
class LabelsSource(Op):
    """Labels from the store as a column of 1 (positive), 0 (negative) and NaN (unlabelled)."""

    name = "source.labels"
    inputs = {"table": Input("table", required=False,
                             doc="A time-indexed table to add the label column to")}
    outputs = {"out": "table"}
    path_fields = {"store": "file"}

    class Config(OpConfig):
        model: str | None = Field(None, description="Labels of this model (default: all)")
        column: str = Field("label", description="The name of the label column")
        series: str | None = Field(None, description="Only labels about this data column "
                                                     "(and the whole model's)")
        positive: list[str] = Field(default_factory=lambda: ["anomaly"],
                                    description="Classes marked 1")
        negative: list[str] = Field(default_factory=lambda: ["normal"],
                                    description="Classes marked 0")
        freq: str | None = Field(None, description="Grid of rows without a table input")
        start: float | str | None = Field(None, description="No label before (date, epoch "
                                                            "s, '-7d')")
        end: float | str | None = Field(None, description="No label after")
        store: str | None = Field(None, description="A store folder (default: the "
                                                     "workflow's store)")
        store_url: str | None = Field(None, description="A store's database URL")

    def source_state(self) -> str | None:
        c = self.config
        if is_relative(c.start) or is_relative(c.end):
            return None
        return store_state(c.store, c.store_url, self._state)

    def store_state(self, store: Any) -> str | None:
        c = self.config
        return own_store_state(c.store, c.store_url, store, self._state)

    def _state(self, store: Any) -> str:
        from sqlalchemy import func, select

        from amml.store.labels import labels

        with store.metadata.engine.connect() as conn:
            found = conn.execute(select(func.max(labels.c.id), func.count())).one()
        return json.dumps(list(found))

    def run(self, ctx: StepContext, table: pd.DataFrame | None = None) -> pd.DataFrame:
        from amml.store.labels import label_intervals

        c = self.config
        overlap = set(c.positive) & set(c.negative)
        if overlap:
            raise OpError(f"source.labels: {sorted(overlap)} are both positive and negative")
        with opened_store(ctx, c.store, c.store_url, self.name) as store:
            intervals = label_intervals(store, c.model)
        value = {**{k: 0.0 for k in c.negative}, **{k: 1.0 for k in c.positive}}
        spans = [(s["start"], s["end"], value[s["label"]]) for s in intervals
                 if s["label"] in value and (s["column"] is None or c.series is None
                                             or s["column"] == c.series)]
        start, end = moment(c.start, "start"), moment(c.end, "end")
        if table is not None:
            if not isinstance(table.index, pd.DatetimeIndex):
                raise OpError("source.labels: the input table needs a time index (a "
                              f"DatetimeIndex), got {type(table.index).__name__}")
            index = table.index
        else:
            index = _grid(spans, c.freq, start, end)
        seconds = _seconds(index)
        labels = np.full(len(index), np.nan)
        for first, last, mark in spans:  # oldest task first; a region after its task
            labels[(seconds >= first - 1e-3) & (seconds <= last + 1e-3)] = mark
        if start is not None:
            labels[seconds < start] = np.nan
        if end is not None:
            labels[seconds > end] = np.nan
        if table is not None:
            out = table.copy()
            if c.column in out.columns:
                kept = pd.to_numeric(out[c.column], errors="coerce").to_numpy(float)
                labels = np.where(np.isnan(labels), kept, labels)
            out[c.column] = labels
        else:
            inside = np.ones(len(index), dtype=bool)
            if start is not None:
                inside &= seconds >= start
            if end is not None:
                inside &= seconds <= end
            out = pd.DataFrame({c.column: labels[inside]}, index=index[inside])
        known = ~np.isnan(out[c.column].to_numpy(float))
        ctx.log_metrics({"rows": len(out), "labelled_rows": int(known.sum()),
                         "anomalous_rows": int((out[c.column].to_numpy(float)[known] > 0).sum()),
                         "labels": len(spans)})
        return out


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.asi8.astype(np.float64) / 1e9 if len(index) else np.zeros(0)


def _grid(spans: list[tuple[float, float, float]], freq: str | None, start: float | None,
          end: float | None) -> pd.DatetimeIndex:
    def stamp(seconds: float) -> pd.Timestamp:
        return pd.Timestamp(round(seconds * 1e9), unit="ns")

    if not spans:
        return pd.DatetimeIndex([], name="timestamp", dtype="datetime64[ns]")
    if freq is None:
        moments = sorted({t for s in spans for t in s[:2]})
        return pd.DatetimeIndex([stamp(t) for t in moments], name="timestamp")
    first = start if start is not None else min(s[0] for s in spans)
    last = end if end is not None else max(s[1] for s in spans)
    try:
        return pd.date_range(stamp(first).floor(freq), stamp(last), freq=freq,
                             name="timestamp", unit="ns")
    except ValueError as exc:
        raise OpError(f"source.labels: freq {freq!r}: {exc}") from None
