"""``source.prediction_log``: what a model server answered, as a table, with the live error.

The server logs every request and answer to the store's ``prediction_log`` table; ground
truth that arrives later (``POST /v1/models/NAME/actuals``, :func:`amml.store.labels.
record_actuals`) is joined by timestamp. Three views of one model's served traffic, received
in ``[since, until)`` (dates, epoch seconds or durations back from now such as ``-2h``):

* ``forecasts`` (default): one row per forecast timestamp (``start``..``end`` bound these),
  the latest served forecast of it: ``<column>_predicted``, ``<column>_actual`` (NaN until
  it arrives), ``<column>_error`` (actual minus predicted), with ``window: N`` the live
  ``<column>_mse`` and ``<column>_mae`` over the last N points that have an actual, and the
  ``version`` that answered. The step logs ``live_mse``, ``live_mae`` and ``labelled_points``.
* ``inputs``: the served input rows themselves (the columns the model was sent), the latest
  sent value of each timestamp: served data become training data.
* ``points``: one row per forecast point (every served forecast, not only the latest), long
  form: ``column, predicted, actual, error, version, received_at, step, endpoint``.

Ground truth from any other source joins too: an ``actuals`` input (a time-indexed table
whose columns are named like the model's outputs, from ``source.mqtt``, ``source.sql``...)
gives the actual of each timestamp it has, before the store's.

The store read is the workflow's own unless ``store`` (a store folder) or ``store_url`` (its
database URL) names another. Timestamps are UTC.
"""

from __future__ import annotations

import json
from typing import Any, Literal

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

Bound = float | str | None


@register
class PredictionLogSource(Op):
    """Served inputs and forecasts of one model, joined with the actuals that arrived."""

    name = "source.prediction_log"
    inputs = {"actuals": Input("table", required=False,
                               doc="Ground truth by time, columns named like the outputs")}
    outputs = {"out": "table"}
    path_fields = {"store": "file"}

    class Config(OpConfig):
        model: str = Field(description="The served model's name")
        view: Literal["forecasts", "inputs", "points"] = Field(
            "forecasts", description="forecasts: one row per forecast time, with actual and "
                                     "error; inputs: the served input rows; points: every "
                                     "served forecast point")
        since: Bound = Field(None, description="Served at or after (date, epoch s, '-2h')")
        until: Bound = Field(None, description="Served before")
        start: Bound = Field(None, description="Rows at or after this data timestamp")
        end: Bound = Field(None, description="Rows at or before this data timestamp")
        column: str | None = Field(None, description="Only this output (forecasts, points)")
        window: int | None = Field(None, ge=1, description="Rolling live MSE/MAE over N "
                                                           "points with an actual")
        store: str | None = Field(None, description="A store folder (default: the "
                                                     "workflow's store)")
        store_url: str | None = Field(None, description="A store's database URL")

    def source_state(self) -> str | None:
        c = self.config
        if any(is_relative(v) for v in (c.since, c.until, c.start, c.end)):
            return None  # a window that moves with the clock
        return store_state(c.store, c.store_url, self._state)

    def store_state(self, store: Any) -> str | None:
        c = self.config
        return own_store_state(c.store, c.store_url, store, self._state)

    def _state(self, store: Any) -> str:
        from sqlalchemy import func, select

        from amml.store.labels import actuals
        from amml.store.metadata.schema import prediction_log

        c = self.config
        with store.metadata.engine.connect() as conn:
            served = conn.execute(select(func.max(prediction_log.c.id), func.count())
                                  .where(prediction_log.c.model == c.model)).one()
            truth = conn.execute(select(func.max(actuals.c.id), func.count())
                                 .where(actuals.c.model == c.model)).one()
        return json.dumps([list(served), list(truth)])

    def run(self, ctx: StepContext, actuals: pd.DataFrame | None = None) -> pd.DataFrame:
        from amml.store.labels import served_points

        c = self.config
        since, until = moment(c.since, "since"), moment(c.until, "until")
        start, end = moment(c.start, "start"), moment(c.end, "end")
        with opened_store(ctx, c.store, c.store_url, self.name) as store:
            if c.view == "inputs":
                table = _bounded(_inputs(store, c.model, since, until), start, end)
                ctx.log_metrics({"rows": len(table)})
                return table
            points = served_points(store, c.model, since=since, until=until,
                                   column=c.column,
                                   keep="all" if c.view == "points" else "latest")
        if actuals is not None:
            points = _join(points, actuals)
        if start is not None:
            points = points[points["ts"] >= start - 1e-3]
        if end is not None:
            points = points[points["ts"] <= end + 1e-3]
        _log_error(ctx, points)
        return _long(points) if c.view == "points" else _wide(points, c.window)


def _join(points: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """``points`` with the actual of each (timestamp, column) that ``truth`` has."""
    from amml.store.served import ts_key

    if not isinstance(truth.index, pd.DatetimeIndex):
        raise OpError("source.prediction_log: the actuals input needs a time index (a "
                      f"DatetimeIndex), got {type(truth.index).__name__}")
    index = truth.index
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    keys = [ts_key(t) for t in index.as_unit("ns").asi8 / 1e9]
    points = points.copy()
    point_keys = [ts_key(t) for t in points["ts"]]
    for name in truth.columns:
        known = pd.to_numeric(truth[name], errors="coerce")
        values = {k: v for k, v in zip(keys, known.to_numpy(float), strict=True) if v == v}
        rows = points["column"] == name
        found = np.array([values.get(k, np.nan) for k in point_keys])
        use = rows.to_numpy() & ~np.isnan(found)
        points.loc[use, "actual"] = found[use]
    return points


def _index(seconds: Any) -> pd.DatetimeIndex:
    stamps = pd.to_datetime(np.asarray(seconds, dtype=float) * 1e9, unit="ns")
    return pd.DatetimeIndex(stamps, name="timestamp")


def _bounded(table: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    if start is not None:
        table = table[table.index >= _index([start])[0]]
    if end is not None:
        table = table[table.index <= _index([end])[0]]
    return table


def _log_error(ctx: StepContext, points: pd.DataFrame) -> None:
    known = points[points["actual"].notna()]
    error = known["actual"] - known["predicted"]
    values = {"rows": len(points), "labelled_points": len(known)}
    if len(known):
        values.update(live_mse=float((error ** 2).mean()), live_mae=float(error.abs().mean()))
        for name, part in known.groupby("column"):
            e = part["actual"] - part["predicted"]
            values[f"live_mse.{name}"] = float((e ** 2).mean())
    ctx.log_metrics(values)


def _long(points: pd.DataFrame) -> pd.DataFrame:
    table = points.assign(error=points["actual"] - points["predicted"])
    table.index = _index(table.pop("ts").to_numpy())
    return table[["column", "predicted", "actual", "error", "version", "received_at", "step",
                  "endpoint"]]


def _wide(points: pd.DataFrame, window: int | None) -> pd.DataFrame:
    if points.empty:
        return pd.DataFrame({"version": pd.Series([], dtype="int64")},
                            index=_index([]))
    parts = {}
    for name, part in points.groupby("column", sort=False):
        part = part.set_index("ts")
        frame = pd.DataFrame({f"{name}_predicted": part["predicted"],
                              f"{name}_actual": part["actual"]})
        frame[f"{name}_error"] = frame[f"{name}_actual"] - frame[f"{name}_predicted"]
        if window is not None:
            error = frame[f"{name}_error"].dropna()
            frame[f"{name}_mse"] = (error ** 2).rolling(window, min_periods=1).mean()
            frame[f"{name}_mae"] = error.abs().rolling(window, min_periods=1).mean()
        parts[name] = frame
    table = pd.concat(parts.values(), axis=1).sort_index()
    table["version"] = points.groupby("ts")["version"].max().reindex(table.index).astype(int)
    table.index = _index(table.index.to_numpy())
    return table


def _inputs(store: Any, model: str, since: float | None, until: float | None
            ) -> pd.DataFrame:
    from amml.store.served import served_windows, ts_key

    rows: dict[int, tuple[float, dict[str, float], int]] = {}
    columns: list[str] = []
    for w in served_windows(store, model, since=since, until=until):
        if w.timestamps is None or w.columns is None:
            continue
        columns += [n for n in w.columns if n not in columns]
        for ts, values in zip(w.timestamps, w.window.tolist(), strict=False):
            rows[ts_key(ts)] = (ts, dict(zip(w.columns, values, strict=False)), w.version)
    if not rows:
        return pd.DataFrame({name: pd.Series([], dtype=float) for name in columns},
                            index=_index([]))
    ordered = sorted(rows.values(), key=lambda r: r[0])
    table = pd.DataFrame([r[1] for r in ordered], columns=columns,
                         index=_index([r[0] for r in ordered]))
    table["version"] = [r[2] for r in ordered]
    if table.index.has_duplicates:  # two texts of one instant
        raise OpError(f"source.prediction_log: duplicate timestamps in {model}'s inputs")
    return table
