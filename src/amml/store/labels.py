"""Ground truth and labels that flow back from the service.

Three tables (migration 0009):

``actuals``
    Observed values that arrive after a forecast was served (``POST
    /v1/models/NAME/actuals``, or any source): one row per model, timestamp (epoch seconds) and
    column. Sent twice, the later one counts. Joined with the prediction log by timestamp,
    they give the live error (:func:`live_window`) and the recent windows a challenger can be
    scored on (:func:`labelled_inputs`).
``label_tasks``
    The queue of items worth a person's look: anomaly alarms, drift-flagged windows,
    uncertain windows, or imported tasks. A task covers a time range of one model (and
    optionally one column); its ``key`` makes producing the same item twice a no-op.
``labels``
    The answers. Labelling a task again adds a version; every version is kept and the latest
    one counts. A label is a class (``anomaly``, ``normal``, or any word) with optional
    regions (``start``, ``end``, ``label``) inside the task's range.

>>> import tempfile
>>> from amml.store import open_store
>>> with open_store(tempfile.mkdtemp()) as store:
...     task = add_task(store, model="oil", kind="alarm", start=100.0, end=160.0,
...                     column="OT", score=5.2)
...     first = add_label(store, task, "anomaly", author="ana")
...     second = add_label(store, task, "normal", author="bo", reason="a planned shutdown")
...     [(v["version"], v["label"]) for v in label_history(store, task)], count_labels(store)
([(1, 'anomaly'), (2, 'normal')], 2)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from amml._exceptions import LabelError

# a module reference, not its names: the schema imports this module, and served imports
# the schema, so either may be imported first
from amml.store import served as _served
from amml.store.metadata.schema import BigId, metadata

__all__ = ["KINDS", "LIVE_COLUMNS", "POINT_COLUMNS", "LabelError", "actuals", "actuals_frame",
           "add_label", "add_task", "count_labels", "get_task", "label_history",
           "label_intervals", "label_tasks", "labelled_inputs", "labels", "latest_labels",
           "live_window", "record_actuals", "served_points", "tasks"]

#: What put a task in the queue.
KINDS = ("alarm", "drift", "uncertain", "manual", "import")
#: The columns of :func:`live_window`'s frame.
LIVE_COLUMNS = ["ts", "column", "predicted", "actual", "version", "received_at"]

actuals = Table(
    "actuals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("ts", Float, nullable=False),  # epoch seconds of the observation
    Column("column_name", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("source", String(64), nullable=False),  # api | cli | a workflow step
    Column("recorded_at", Float, nullable=False),
    Index("ix_actuals_model_ts", "model", "ts"),
)

label_tasks = Table(
    "label_tasks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("model", String(200), nullable=False),
    Column("kind", String(32), nullable=False),  # one of KINDS
    Column("start_ts", Float, nullable=False),  # epoch seconds
    Column("end_ts", Float, nullable=False),
    Column("column_name", String(200), nullable=True),
    Column("score", Float, nullable=True),
    Column("details", Text, nullable=False),  # JSON object
    Column("created_at", Float, nullable=False),
    Column("labelled_at", Float, nullable=True),  # the latest label's time; None: open
    Index("ix_label_tasks_model", "model", "created_at"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task_id", BigId, ForeignKey("label_tasks.id"), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("label", String(64), nullable=False),
    Column("regions", Text, nullable=False),  # JSON list of {start, end, label}
    Column("author", String(200), nullable=False),
    Column("source", String(32), nullable=False),  # api | cli | label-studio
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("task_id", "version", name="uq_labels_task_version"),
    Index("ix_labels_model", "model", "created_at"),
)


# -- actuals --------------------------------------------------------------------------------
def record_actuals(store: Any, model: str, rows: Iterable[dict[str, Any]],
                   source: str = "api") -> int:
    """Store observed values of ``model``: rows ``{"ts": epoch seconds or date text,
    "column": name, "value": number}``, in one transaction. Returns how many were stored;
    a row that cannot be read is a :class:`LabelError` naming it, and nothing is stored."""
    now = time.time()
    records = []
    for i, row in enumerate(rows):
        try:
            ts = _served.to_epoch(row["ts"])
            value = float(row["value"])
            column = str(row["column"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelError(f"actual {i}: expected {{'ts', 'column', 'value'}} with a "
                             f"timestamp and a number, got {row!r} ({exc})") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise LabelError(f"actual {i}: the value must be a finite number, got {value}")
        if not column:
            raise LabelError(f"actual {i}: the column name is empty")
        records.append(dict(model=model, ts=ts, column_name=column, value=value,
                            source=source[:64], recorded_at=now))
    if records:
        with store.metadata.engine.begin() as conn:
            conn.execute(insert(actuals), records)
    return len(records)


def actuals_frame(store: Any, model: str, *, start: float | None = None,
                  end: float | None = None, column: str | None = None) -> Any:
    """The actuals of ``model`` with ``start <= ts <= end`` as a frame ``ts, column, value``
    (the latest recorded value per timestamp and column), sorted by time."""
    import pandas as pd

    latest = _latest_actuals(store, model, start, end, column)
    rows = [(ts, col, value) for (_, col), (ts, value) in latest.items()]
    frame = pd.DataFrame(rows, columns=["ts", "column", "value"])
    return frame.sort_values(["ts", "column"], kind="stable").reset_index(drop=True)


def _latest_actuals(store: Any, model: str, start: float | None, end: float | None,
                    column: str | None = None) -> dict[tuple[int, str], tuple[float, float]]:
    """(ts key, column) -> (ts, value): the latest recorded actual of each."""
    query = (select(actuals.c.ts, actuals.c.column_name, actuals.c.value)
             .where(actuals.c.model == model).order_by(actuals.c.recorded_at, actuals.c.id))
    if start is not None:
        query = query.where(actuals.c.ts >= start - 1e-3)
    if end is not None:
        query = query.where(actuals.c.ts <= end + 1e-3)
    if column is not None:
        query = query.where(actuals.c.column_name == column)
    with store.metadata.engine.connect() as conn:
        found = conn.execute(query).all()
    return {(_served.ts_key(ts), name): (float(ts), float(value)) for ts, name, value in found}


# -- live error -----------------------------------------------------------------------------
def live_window(store: Any, model: str, *, since: float | None = None,
                until: float | None = None, column: str | None = None) -> Any:
    """Served forecasts of ``model`` joined with their actuals by timestamp.

    ``since`` and ``until`` bound when the forecasts were served (``received_at``, epoch
    seconds). One row per (forecast timestamp, column) that has an actual: columns
    :data:`LIVE_COLUMNS`; where several served forecasts cover a timestamp, the latest one
    counts. The actual is the latest recorded one; a ``detect`` request carries the values it
    is scored against, and those count as actuals where none was recorded."""
    points = served_points(store, model, since=since, until=until, column=column)
    found = points[points["actual"].notna()][LIVE_COLUMNS]
    return found.reset_index(drop=True)


#: The columns of :func:`served_points`'s frame.
POINT_COLUMNS = [*LIVE_COLUMNS, "step", "endpoint"]


def served_points(store: Any, model: str, *, since: float | None = None,
                  until: float | None = None, column: str | None = None,
                  keep: str = "latest") -> Any:
    """Every forecast point served for ``model`` (received in ``[since, until)``), with its
    actual where one is known (else NaN): columns :data:`POINT_COLUMNS` (``step``: how many
    steps ahead it was forecast, 1 for the first), sorted by time. ``keep="latest"`` keeps
    the latest served forecast of each timestamp and column; ``"all"`` keeps every one."""
    import pandas as pd

    if keep not in ("latest", "all"):
        raise LabelError(f"keep must be 'latest' or 'all', got '{keep}'")
    windows = [w for w in _served.served_windows(store, model, since=since, until=until)
               if w.forecast_ts]
    rows: list[tuple[Any, ...]] = []
    if windows:
        truth = _truth(store, model, windows, column)
        latest: dict[tuple[int, str], tuple[Any, ...]] = {}
        for w in windows:
            for name, values in w.forecast.items():
                if column is not None and name != column:
                    continue
                for step, (ts, predicted) in enumerate(
                        zip(w.forecast_ts or (), values, strict=False), start=1):
                    key = (_served.ts_key(ts), name)
                    point = (ts, name, predicted, truth.get(key, float("nan")), w.version,
                             w.received_at, step, w.endpoint)
                    if keep == "all":
                        rows.append(point)
                    else:
                        latest[key] = point
        rows.extend(latest.values())
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS).astype(
        {"ts": float, "column": object, "predicted": float, "actual": float, "version": int,
         "received_at": float, "step": int, "endpoint": object})
    return frame.sort_values(["ts", "column", "received_at"], kind="stable"
                             ).reset_index(drop=True)


def _truth(store: Any, model: str, windows: list[_served.ServedWindow],
           column: str | None) -> dict[tuple[int, str], float]:
    """(ts key, column) -> actual: the values detect requests sent, overridden by the
    recorded actuals."""
    truth: dict[tuple[int, str], float] = {}
    for w in windows:
        for name, values in w.observed.items():
            for ts, value in zip(w.forecast_ts or (), values, strict=False):
                truth[(_served.ts_key(ts), name)] = value
    stamps = [ts for w in windows for ts in (w.forecast_ts or ())]
    recorded = _latest_actuals(store, model, min(stamps), max(stamps), column)
    truth.update({key: value for key, (_, value) in recorded.items()})
    return truth


def labelled_inputs(store: Any, model: str, *, since: float | None = None,
                    until: float | None = None) -> list[dict[str, Any]]:
    """The served windows of ``model`` (received at or after ``since``) whose whole forecast
    has actuals: ``{"window": lookback rows x columns, "columns": [...], "target": horizon
    rows x outputs, "outputs": [...], "timestamps": the target's times, "version",
    "received_at"}``, oldest first: the inputs the champion answered, with what came true,
    so a challenger can be scored on the same recent data."""
    windows = [w for w in _served.served_windows(store, model, since=since, until=until)
               if w.forecast_ts and w.columns is not None]  # unnamed columns: unusable
    if not windows:
        return []
    truth = _truth(store, model, windows, None)
    found = []
    for w in windows:
        outputs = [o for o in w.outputs if o in w.forecast] or list(w.forecast)
        target = []
        for ts in w.forecast_ts or ():
            row = [truth.get((_served.ts_key(ts), name)) for name in outputs]
            if any(v is None for v in row):
                break
            target.append(row)
        else:
            if target and len(target) == w.horizon:
                found.append({"window": w.lookback_rows, "columns": w.columns,
                              "target": target, "outputs": outputs,
                              "timestamps": list(w.forecast_ts or ()),
                              "version": w.version, "received_at": w.received_at})
    return found


# -- the task queue -------------------------------------------------------------------------
def add_task(store: Any, *, model: str, kind: str, start: Any, end: Any,
             column: str | None = None, score: float | None = None,
             details: dict[str, Any] | None = None, key: str | None = None) -> int:
    """Queue an item for labelling and return its id. With ``key`` (what produced it, such
    as ``drift:12``), a second call with the same key returns the first task's id."""
    if kind not in KINDS:
        raise LabelError(f"unknown task kind '{kind}' (kinds: {', '.join(KINDS)})")
    try:
        start_ts, end_ts = _served.to_epoch(start), _served.to_epoch(end)
    except ValueError as exc:
        raise LabelError(f"task range: {exc}") from None
    if end_ts < start_ts:
        raise LabelError(f"a task's end ({end}) is before its start ({start})")
    now = time.time()
    key = key or f"{kind}:{model}:{column or '*'}:{start_ts:.3f}:{end_ts:.3f}"
    row = dict(key=key[:255], model=model, kind=kind, start_ts=start_ts, end_ts=end_ts,
               column_name=column, score=None if score is None else float(score),
               details=json.dumps(details or {}, default=str), created_at=now,
               labelled_at=None)
    existing = _task_id(store, row["key"])
    if existing is not None:
        return existing
    try:
        with store.metadata.engine.begin() as conn:
            result = conn.execute(insert(label_tasks).values(**row))
            return int(result.inserted_primary_key[0])
    except IntegrityError:  # produced at the same moment elsewhere
        found = _task_id(store, row["key"])
        if found is None:
            raise
        return found


def _task_id(store: Any, key: str) -> int | None:
    with store.metadata.engine.connect() as conn:
        found = conn.execute(select(label_tasks.c.id).where(label_tasks.c.key == key)).scalar()
    return None if found is None else int(found)


def get_task(store: Any, task_id: int) -> dict[str, Any]:
    """One task with its latest label (``label``: None while open)."""
    found = tasks(store, ids=[int(task_id)])
    if not found:
        raise LabelError(f"no label task {task_id}")
    return found[0]


def tasks(store: Any, *, model: str | None = None, status: str | None = None,
          kind: str | None = None, ids: Iterable[int] | None = None,
          models: Iterable[str] | None = None, limit: int | None = None,
          offset: int = 0) -> list[dict[str, Any]]:
    """Tasks (oldest first), each with its latest label. ``status``: ``open`` (never
    labelled), ``labelled`` or None (both); ``models`` restricts to those names."""
    if status not in (None, "open", "labelled"):
        raise LabelError(f"status must be 'open' or 'labelled', got '{status}'")
    query = select(label_tasks).order_by(label_tasks.c.created_at, label_tasks.c.id)
    if model is not None:
        query = query.where(label_tasks.c.model == model)
    if models is not None:
        query = query.where(label_tasks.c.model.in_(list(models)))
    if kind is not None:
        query = query.where(label_tasks.c.kind == kind)
    if ids is not None:
        query = query.where(label_tasks.c.id.in_([int(i) for i in ids]))
    if status == "open":
        query = query.where(label_tasks.c.labelled_at.is_(None))
    elif status == "labelled":
        query = query.where(label_tasks.c.labelled_at.is_not(None))
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    with store.metadata.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    current = _latest_by_task(store, [int(r["id"]) for r in rows])
    return [_task_json(row, current.get(int(row["id"]))) for row in rows]


def _task_json(row: Any, label: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": int(row["id"]), "key": row["key"], "model": row["model"],
            "kind": row["kind"], "start": row["start_ts"], "end": row["end_ts"],
            "column": row["column_name"], "score": row["score"],
            "details": json.loads(row["details"]), "created_at": row["created_at"],
            "status": "open" if label is None else "labelled", "label": label}


# -- labels ---------------------------------------------------------------------------------
def add_label(store: Any, task_id: int, label: str, *, regions: Iterable[dict[str, Any]] = (),
              author: str = "", source: str = "api", reason: str = "") -> dict[str, Any]:
    """Label task ``task_id``: a new version (1 for the first), kept beside the earlier
    ones; the latest counts. ``regions`` mark parts of the task's range (``start``, ``end``,
    ``label``); without any the label covers the whole range."""
    label = str(label).strip()
    if not label or len(label) > 64:
        raise LabelError("a label is a word of 1 to 64 characters (such as 'anomaly' or "
                         f"'normal'), got {label!r}")
    task = _task_row(store, task_id)
    spans = [_region(r, i, label) for i, r in enumerate(regions)]
    for _ in range(20):
        now = time.time()
        try:
            with store.metadata.engine.begin() as conn:
                latest = conn.execute(select(func.max(labels.c.version))
                                      .where(labels.c.task_id == int(task_id))).scalar()
                version = int(latest or 0) + 1
                row = dict(task_id=int(task_id), model=task["model"], version=version,
                           label=label, regions=json.dumps(spans), author=author[:200],
                           source=source[:32], reason=reason, created_at=now)
                conn.execute(insert(labels), [row])
                conn.execute(update(label_tasks).where(label_tasks.c.id == int(task_id))
                             .values(labelled_at=now))
            return _label_json(row)
        except IntegrityError:  # another writer took this version number: take the next
            continue
    raise LabelError(f"task {task_id}: could not add a label version (too many writers)")


def _region(region: dict[str, Any], i: int, default: str) -> dict[str, Any]:
    try:
        start = _served.to_epoch(region["start"])
        end = _served.to_epoch(region.get("end", region["start"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LabelError(f"region {i}: expected 'start' and 'end' timestamps, got "
                         f"{region!r} ({exc})") from None
    if end < start:
        raise LabelError(f"region {i}: its end is before its start")
    # milliseconds, the resolution timestamps are joined and exported at
    out = {"start": round(start, 3), "end": round(end, 3),
           "label": str(region.get("label") or default)}
    if region.get("column"):
        out["column"] = str(region["column"])
    return out


def _task_row(store: Any, task_id: int) -> Any:
    with store.metadata.engine.connect() as conn:
        row = conn.execute(select(label_tasks).where(label_tasks.c.id == int(task_id))
                           ).mappings().first()
    if row is None:
        raise LabelError(f"no label task {task_id}")
    return row


def _label_json(row: Any) -> dict[str, Any]:
    regions = row["regions"]
    return {"task_id": int(row["task_id"]), "model": row["model"],
            "version": int(row["version"]), "label": row["label"],
            "regions": json.loads(regions) if isinstance(regions, str) else regions,
            "author": row["author"], "source": row["source"], "reason": row["reason"],
            "created_at": row["created_at"]}


def label_history(store: Any, task_id: int) -> list[dict[str, Any]]:
    """Every label version of a task, oldest first."""
    query = (select(labels).where(labels.c.task_id == int(task_id))
             .order_by(labels.c.version))
    with store.metadata.engine.connect() as conn:
        return [_label_json(r) for r in conn.execute(query).mappings().all()]


def _latest_by_task(store: Any, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not task_ids:
        return {}
    newest = (select(labels.c.task_id, func.max(labels.c.version).label("v"))
              .where(labels.c.task_id.in_(task_ids)).group_by(labels.c.task_id).subquery())
    query = select(labels).join(newest, and_(labels.c.task_id == newest.c.task_id,
                                             labels.c.version == newest.c.v))
    with store.metadata.engine.connect() as conn:
        return {int(r["task_id"]): _label_json(r)
                for r in conn.execute(query).mappings().all()}


def latest_labels(store: Any, model: str | None = None) -> list[dict[str, Any]]:
    """The labelled tasks (of ``model``) with their latest label, oldest task first."""
    return tasks(store, model=model, status="labelled")


def count_labels(store: Any, *, model: str | None = None, since: float | None = None) -> int:
    """How many label versions were added (for ``model``; at or after ``since``, epoch
    seconds): what a "N new labels" trigger counts."""
    query = select(func.count()).select_from(labels)
    if model is not None:
        query = query.where(labels.c.model == model)
    if since is not None:
        query = query.where(labels.c.created_at >= since)
    with store.metadata.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def label_intervals(store: Any, model: str | None = None) -> list[dict[str, Any]]:
    """The latest labels as time intervals: ``{"start", "end", "label", "column",
    "task_id", "version"}``: a label's regions, or the task's whole range when it has none.
    A labelled task with regions marks the rest of its range with its own label only where
    no region is (so 'normal' with one 'anomaly' region says both)."""
    out = []
    for task in latest_labels(store, model):
        label = task["label"]
        base = {"task_id": task["id"], "version": label["version"]}
        regions = label["regions"]
        if not regions or label["label"] not in {r["label"] for r in regions}:
            out.append({**base, "start": task["start"], "end": task["end"],
                        "label": label["label"], "column": task["column"], "whole": True})
        for region in regions:
            out.append({**base, "start": region["start"], "end": region["end"],
                        "label": region["label"],
                        "column": region.get("column", task["column"]), "whole": False})
    return out
