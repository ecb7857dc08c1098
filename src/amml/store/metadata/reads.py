"""Metric and cache-provenance reads of the metadata store (a mixin of ``MetadataStore``).

Two rules live here so every reader (``amml show``, ``--json``, ``Client``) agrees:

* a metric's *last* value is the point with the highest ``step``, then the latest timestamp
  (MLflow's "latest metric"); the row id only breaks exact ties. Row ids follow commit order,
  and buffered ``log_metric`` calls commit after an immediate ``log_batch``, so "highest id"
  answered with an old step.
* a step served from the cache logged nothing in this run; its metrics are those of the run
  that produced the cached outputs (found through the cache entry), shown under this run's
  step name and marked ``cached_from`` with that run's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, false, func, or_, select

from amml.store.metadata import schema


class MetricReads:
    """Read-side queries over metrics, steps and cache entries; needs ``self._rows``."""

    def _rows(self, statement: Any) -> list[dict[str, Any]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def cached_sources(self, run_id: str) -> dict[str, tuple[str, str]]:
        """For each step of ``run_id`` served from the cache: (run id, step name) of the step
        that ran and wrote the cache entry it used."""
        s, c = schema.steps, schema.cache_entries
        rows = self._rows(
            select(s.c.name, c.c.run_id, c.c.step_name)
            .join(c, c.c.cache_key == s.c.cache_key)
            .where(s.c.run_id == run_id, s.c.status == "cached", c.c.run_id != run_id))
        return {r["name"]: (r["run_id"], r["step_name"]) for r in rows}

    def cached_users(self, run_id: str, step_name: str) -> list[tuple[str, str]]:
        """(run id, step name) of every later step served from the cache entry that step
        ``step_name`` of ``run_id`` wrote: the same outputs, reused."""
        s, c = schema.steps, schema.cache_entries
        rows = self._rows(
            select(s.c.run_id, s.c.name)
            .join(c, c.c.cache_key == s.c.cache_key)
            .where(c.c.run_id == run_id, c.c.step_name == step_name, s.c.status == "cached",
                   s.c.run_id != run_id)
            .order_by(s.c.started_at))
        return [(r["run_id"], r["name"]) for r in rows]

    def _metric_scope(self, run_id: str, step_name: str | None
                      ) -> tuple[Any, dict[tuple[str, str], str]]:
        """The WHERE clause selecting a run's own metrics and its cached steps' ones, and a
        map from a cached source (run, step) to the step name it is shown under."""
        m = schema.metrics
        own = m.c.run_id == run_id
        if step_name is not None:
            own = and_(own, m.c.step_name == step_name)
        shown: dict[tuple[str, str], str] = {}
        for name, source in self.cached_sources(run_id).items():
            if step_name is None or name == step_name:
                shown[source] = name
        borrowed = [and_(m.c.run_id == r, m.c.step_name == s) for r, s in shown]
        return or_(own, *borrowed) if borrowed else or_(own, false()), shown

    @staticmethod
    def _attribute(rows: list[dict[str, Any]], run_id: str,
                   shown: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
        for row in rows:
            source_run = row.pop("run_id")
            if source_run != run_id:
                row["cached_from"] = source_run
                row["step_name"] = shown[(source_run, row["step_name"])]
        return rows

    def metrics(self, run_id: str, key: str | None = None,
                step_name: str | None = None) -> list[dict[str, Any]]:
        """Every point of ``run_id`` (of one key / step if given), by key then step; points
        of cached steps come from the run that produced them, with ``cached_from``."""
        from amml.store.metadata.store import decode_metric_rows

        m = schema.metrics
        scope, shown = self._metric_scope(run_id, step_name)
        query = select(m.c.run_id, m.c.step_name, m.c.key, m.c.value, m.c.value_kind,
                       m.c.step, m.c.timestamp).where(scope)
        if key is not None:
            query = query.where(m.c.key == key)
        rows = self._attribute(self._rows(query.order_by(m.c.key, m.c.step, m.c.id)),
                               run_id, shown)
        # stable: a run's own points and borrowed ones interleave by step, as if logged here
        rows.sort(key=lambda r: (r["key"], r["step"]))
        return decode_metric_rows(rows)

    def metric_summary(self, run_id: str) -> list[dict[str, Any]]:
        """Per (step, key): the last value (highest step, then latest timestamp) and the
        number of points; a cached step's come from its producing run (``cached_from``)."""
        from amml.store.metadata.store import decode_metric_rows

        m = schema.metrics
        scope, shown = self._metric_scope(run_id, None)
        group: Sequence[Any] = (m.c.run_id, m.c.step_name, m.c.key)
        ranked = select(
            m.c.run_id, m.c.step_name, m.c.key, m.c.value, m.c.value_kind,
            func.row_number().over(partition_by=group, order_by=(
                m.c.step.desc(), m.c.timestamp.desc(), m.c.id.desc())).label("rank"),
            func.count().over(partition_by=group).label("points"),
        ).where(scope).subquery()
        query = (select(ranked.c.run_id, ranked.c.step_name, ranked.c.key, ranked.c.value,
                        ranked.c.value_kind, ranked.c.points)
                 .where(ranked.c.rank == 1))
        rows = self._attribute(self._rows(query), run_id, shown)
        rows.sort(key=lambda r: (r["step_name"], r["key"]))
        return decode_metric_rows(rows)
