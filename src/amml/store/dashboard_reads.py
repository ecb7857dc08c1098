"""Batch reads for the dashboard: one query per page section, never one per row.

The store's own reads (:class:`~amml.store.metadata.MetadataStore`, ``MetricReads``) answer
about one run; a page shows fifty, so these take a list of run ids and answer for all of them
at once (no N+1 queries). Every query here is bounded (a page, a limit) and walks an index
(see :mod:`amml.store.dashboard_indexes`), so a page stays fast at 10,000 runs and
1,000,000 metric points.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Table, and_, func, select

from amml.store.metadata import MetadataStore, schema
from amml.store.metadata.store import decode_metric_rows

#: Most points of one metric a chart gets; longer series are thinned evenly (first and last
#: kept), since a browser chart of 100,000 points shows nothing 2,000 do not.
MAX_CHART_POINTS = 2000


@dataclass(frozen=True)
class RunPage:
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


def runs_page(meta: MetadataStore, *, workflow: str | None = None, status: str | None = None,
              search: str | None = None, offset: int = 0, limit: int = 50) -> RunPage:
    """Runs newest first, filtered by workflow, status and a run-id prefix or workflow
    substring; with the number of runs the filter matches."""
    r = schema.runs
    conditions = []
    if workflow:
        conditions.append(r.c.workflow == workflow)
    if status:
        conditions.append(r.c.status == status)
    if search:
        pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(r.c.id.like(f"{pattern}%", escape="\\")
                          | r.c.workflow.like(f"%{pattern}%", escape="\\"))
    where = and_(*conditions) if conditions else None
    query = select(r.c.id, r.c.workflow, r.c.kind, r.c.status, r.c.started_at, r.c.ended_at,
                   r.c.error, r.c.code_commit, r.c.code_dirty)
    count = select(func.count().label("n")).select_from(r)
    if where is not None:
        query, count = query.where(where), count.where(where)
    rows = meta._rows(query.order_by(r.c.started_at.desc()).offset(offset).limit(limit))
    total = meta._rows(count)[0]["n"]
    return RunPage(rows, int(total), offset, limit)


def workflow_names(meta: MetadataStore, limit: int = 500) -> list[str]:
    """Distinct workflow names (the runs filter's choices)."""
    r = schema.runs
    return [row["workflow"] for row in meta._rows(
        select(r.c.workflow).distinct().order_by(r.c.workflow).limit(limit))]


def runs_by_id(meta: MetadataStore, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    r = schema.runs
    if not run_ids:
        return {}
    rows = meta._rows(select(r.c.id, r.c.workflow, r.c.status, r.c.started_at, r.c.ended_at,
                             r.c.code_commit, r.c.code_dirty).where(r.c.id.in_(list(run_ids))))
    return {row["id"]: row for row in rows}


def params_many(meta: MetadataStore, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{run id: {param: value}}`` for several runs in one query."""
    p = schema.params
    found: dict[str, dict[str, Any]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        for row in meta._rows(select(p).where(p.c.run_id.in_(list(run_ids)))):
            found[row["run_id"]][row["key"]] = json.loads(row["value"])
    return found


def last_metrics_many(meta: MetadataStore, run_ids: Sequence[str]
                      ) -> dict[str, dict[str, float]]:
    """``{run id: {key: last value}}``: per key the point with the highest step, then the
    latest timestamp (the store's rule), over every step of the run.

    Two steps, both answered from the index on (run_id, key, step, timestamp): the highest
    step per (run, key), then the points at that step (a window function ranking every
    point of fifty runs was five times slower on SQLite)."""
    m = schema.metrics
    found: dict[str, dict[str, float]] = {run_id: {} for run_id in run_ids}
    if not run_ids:
        return found
    top = (select(m.c.run_id, m.c.key, func.max(m.c.step).label("top"))
           .where(m.c.run_id.in_(list(run_ids))).group_by(m.c.run_id, m.c.key).subquery())
    rows = meta._rows(
        select(m.c.run_id, m.c.key, m.c.value, m.c.value_kind, m.c.timestamp, m.c.id)
        .join(top, (top.c.run_id == m.c.run_id) & (top.c.key == m.c.key)
              & (top.c.top == m.c.step)))
    rows.sort(key=lambda r: (r["timestamp"], r["id"]))  # the latest point at that step wins
    for row in decode_metric_rows(rows):
        found[row["run_id"]][row["key"]] = row["value"]
    return found


def step_counts_many(meta: MetadataStore, run_ids: Sequence[str]
                     ) -> dict[str, dict[str, int]]:
    """``{run id: {step status: count}}`` (ran, cached, failed...) in one query."""
    s = schema.steps
    found: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        for row in meta._rows(select(s.c.run_id, s.c.status, func.count().label("n"))
                              .where(s.c.run_id.in_(list(run_ids)))
                              .group_by(s.c.run_id, s.c.status)):
            found[row["run_id"]][row["status"]] = int(row["n"])
    return found


def metric_series_many(meta: MetadataStore, run_ids: Sequence[str], keys: Sequence[str],
                       max_points: int = MAX_CHART_POINTS
                       ) -> dict[tuple[str, str], dict[str, list[Any]]]:
    """``{(run id, key): {"step": [...], "value": [...]}}``, by step, thinned to
    ``max_points`` per series; non-finite values come back as None (a gap in a chart)."""
    m = schema.metrics
    series: dict[tuple[str, str], dict[str, list[Any]]] = {}
    if not run_ids or not keys:
        return series
    rows = meta._rows(select(m.c.run_id, m.c.key, m.c.step, m.c.value)
                      .where(m.c.run_id.in_(list(run_ids)), m.c.key.in_(list(keys)))
                      .order_by(m.c.run_id, m.c.key, m.c.step, m.c.timestamp))
    for row in rows:
        entry = series.setdefault((row["run_id"], row["key"]), {"step": [], "value": []})
        entry["step"].append(row["step"])
        entry["value"].append(row["value"])
    return {k: thin(v, max_points) for k, v in series.items()}


def thin(series: dict[str, list[Any]], max_points: int) -> dict[str, list[Any]]:
    """Every n-th point of each list so at most ``max_points`` remain, the last one kept."""
    size = len(next(iter(series.values()), []))
    if size <= max_points:
        return series
    stride = -(-size // max_points)
    picked = list(range(0, size, stride))
    if picked[-1] != size - 1:
        picked[-1] = size - 1
    return {name: [values[i] for i in picked] for name, values in series.items()}


def metric_keys_many(meta: MetadataStore, run_ids: Sequence[str]) -> dict[str, int]:
    """``{key: number of points}`` over several runs (which metrics to chart)."""
    m = schema.metrics
    if not run_ids:
        return {}
    rows = meta._rows(select(m.c.key, func.count().label("n"))
                      .where(m.c.run_id.in_(list(run_ids))).group_by(m.c.key)
                      .order_by(m.c.key))
    return {row["key"]: int(row["n"]) for row in rows}


def run_outputs(meta: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """Every artifact the run's steps wrote (or reused from the cache), with its type and
    size: (step, port, digest, type, size), in step order."""
    lin, art, st = schema.lineage, schema.artifacts, schema.steps
    query = (select(lin.c.step_name, lin.c.port, lin.c.artifact_digest, art.c.type,
                    art.c.size, st.c.started_at)
             .join(art, art.c.digest == lin.c.artifact_digest, isouter=True)
             .join(st, (st.c.run_id == lin.c.run_id) & (st.c.name == lin.c.step_name))
             .where(lin.c.run_id == run_id, lin.c.direction == "out")
             .order_by(st.c.started_at, lin.c.id))
    return meta._rows(query)


def recent_runs(meta: MetadataStore, *, limit: int = 20, offset: int = 0
                ) -> list[dict[str, Any]]:
    r = schema.runs
    return meta._rows(select(r.c.id, r.c.workflow, r.c.status, r.c.started_at)
                      .order_by(r.c.started_at.desc()).offset(offset).limit(limit))


def source_slices(meta: MetadataStore, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The data slices several runs read: outputs of their ``source.*`` steps (run, step, op,
    port, digest, size), the left column of the lineage graph."""
    lin, st, art = schema.lineage, schema.steps, schema.artifacts
    if not run_ids:
        return []
    query = (select(lin.c.run_id, lin.c.step_name, st.c.op, lin.c.port,
                    lin.c.artifact_digest, art.c.size, art.c.type)
             .join(st, (st.c.run_id == lin.c.run_id) & (st.c.name == lin.c.step_name))
             .join(art, art.c.digest == lin.c.artifact_digest, isouter=True)
             .where(lin.c.run_id.in_(list(run_ids)), lin.c.direction == "out",
                    st.c.op.like("source.%"))
             .order_by(lin.c.id))
    return meta._rows(query)


def detection_outputs(meta: MetadataStore, *, limit: int = 30) -> list[dict[str, Any]]:
    """The newest steps that ran an anomaly detector (op ``detect`` or ``detect.*``) with the
    table they wrote: (run, step, op, started, digest, size), newest first.

    One query per detector op, each walking the index on (op, started_at) backwards and
    stopping after ``limit`` rows; the answers are merged. A single query over every detector
    op (``op = 'detect' OR op BETWEEN ...``) cannot take its rows in time order from that
    index, so it joined and sorted every detector step ever recorded to keep thirty."""
    newest: list[dict[str, Any]] = []
    for op in detector_ops(meta):
        newest.extend(_detections_of(meta, op, limit))
    newest.sort(key=lambda row: row["started_at"], reverse=True)
    return newest[:limit]


def detector_ops(meta: MetadataStore) -> list[str]:
    """The distinct detector ops recorded: ``detect`` and every ``detect.*``. A skip scan of
    the index on (op, started_at): one index seek per distinct op, never a walk over every
    detector step."""
    st = schema.steps
    ops = []
    if meta._rows(select(st.c.op).where(st.c.op == "detect").limit(1)):
        ops.append("detect")
    after = "detect."  # a range, not LIKE (case-insensitive in SQLite, so never an index scan)
    while True:
        rows = meta._rows(select(func.min(st.c.op).label("op"))
                          .where(st.c.op > after, st.c.op < "detect/"))
        if not rows or rows[0]["op"] is None:
            return ops
        after = rows[0]["op"]
        ops.append(after)


def _detections_of(meta: MetadataStore, op: str, limit: int) -> list[dict[str, Any]]:
    lin, st, art = schema.lineage, schema.steps, schema.artifacts
    return meta._rows(
        select(st.c.run_id, st.c.name, st.c.op, st.c.started_at, st.c.status,
               lin.c.artifact_digest, art.c.size)
        .join(lin, (lin.c.run_id == st.c.run_id) & (lin.c.step_name == st.c.name))
        .join(art, art.c.digest == lin.c.artifact_digest)
        .where(st.c.op == op, lin.c.direction == "out", art.c.type == "table")
        .order_by(st.c.started_at.desc()).limit(limit))


def ledger_summaries(meta: MetadataStore) -> list[dict[str, Any]]:
    """Per ledger: entries, last sequence number, rollback entries, first and last time."""
    le = schema.ledger_entries
    rows = meta._rows(select(
        le.c.ledger, func.count().label("entries"), func.max(le.c.seq).label("last_seq"),
        func.sum((le.c.kind == "rollback").cast(Integer)).label("rollbacks"),
        func.min(le.c.created_at).label("first_at"), func.max(le.c.created_at).label("last_at"),
    ).group_by(le.c.ledger).order_by(func.max(le.c.created_at).desc()))
    for row in rows:
        row["rollbacks"] = int(row["rollbacks"] or 0)
    return rows


#: The serving page summarises at most this many of the newest logged requests: a busy
#: server logs thousands a minute, and the page must not aggregate an hour of them.
RECENT_REQUESTS = 10_000


def prediction_summary(meta: MetadataStore, since: float, newest: int = RECENT_REQUESTS
                       ) -> list[dict[str, Any]]:
    """Per model, endpoint and version, over the newest ``newest`` requests logged since
    ``since``: requests, errors (status >= 400), mean and highest latency, first and last
    time (walks the index on ``received_at`` backwards, so the cost is bounded)."""
    pl = schema.prediction_log
    recent = (select(pl.c.model, pl.c.endpoint, pl.c.version, pl.c.status, pl.c.latency_ms,
                     pl.c.received_at)
              .where(pl.c.received_at >= since).order_by(pl.c.received_at.desc())
              .limit(newest).subquery())
    return meta._rows(select(
        recent.c.model, recent.c.endpoint, recent.c.version, func.count().label("requests"),
        func.sum((recent.c.status >= 400).cast(Integer)).label("errors"),
        func.avg(recent.c.latency_ms).label("mean_ms"),
        func.max(recent.c.latency_ms).label("max_ms"),
        func.min(recent.c.received_at).label("first_at"),
        func.max(recent.c.received_at).label("last_at"),
    ).group_by(recent.c.model, recent.c.endpoint, recent.c.version)
        .order_by(recent.c.model, recent.c.endpoint, recent.c.version))


#: Column names read as "when" in a capability's table, newest first on the pages.
TIME_COLUMNS = ("at", "created_at", "detected_at", "updated_at", "last_seen", "last_seen_at",
                "timestamp", "time", "started_at", "received_at", "seen_at")


def time_column(table: Table) -> str | None:
    for name in TIME_COLUMNS:
        if name in table.c:
            return name
    return None


def latest_rows(meta: MetadataStore, table: Table, limit: int = 200
                ) -> list[dict[str, Any]]:
    """The newest ``limit`` rows of a capability's table (drift events, devices, fleet
    clients, labels), by its time column when it has one."""
    query = select(table).limit(limit)
    column = time_column(table)
    if column is not None:
        query = query.order_by(table.c[column].desc())
    return meta._rows(query)


def row_count(meta: MetadataStore, table: Table) -> int:
    rows = meta._rows(select(func.count().label("n")).select_from(table))
    return int(rows[0]["n"])


def module_tables(module_name: str) -> list[Table] | None:
    """The tables a capability's store module (``amml.store.drift_events``...) defines;
    None when that module is not installed."""
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    tables = {id(v): v for v in vars(module).values() if isinstance(v, Table)}
    return sorted(tables.values(), key=lambda t: t.name)
