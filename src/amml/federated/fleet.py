"""The fleet: clients' health reports, kept in the store and shown or exported.

Clients put ``health.*`` numbers in the MetricRecord of every training reply (see
:class:`amml.federated.client.HealthProbe`); the ServerApp turns each reply — or its absence —
into a row of ``fleet_reports`` (:mod:`amml.store.fleet`). :func:`prometheus_text` writes the
newest row per client in Prometheus' text exposition format.

>>> rows = [dict(federation="air", client="a", status="ok", rows=10, reported_at=5.0,
...              cpu_percent=12.5, memory_mb=300.0, new_rows=2, newest_row_at=None,
...              local_loss=0.25, model_version=3, round=2)]
>>> print(prometheus_text(rows, now=7.0).splitlines()[2])
amml_fleet_up{federation="air",client="a"} 1
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from amml.store import Store
from amml.store.fleet import FleetTable

#: health metric (as the client sends it) -> fleet_reports column
HEALTH_COLUMNS = {"health.cpu_percent": "cpu_percent", "health.memory_mb": "memory_mb",
                  "health.rows": "rows", "health.new_rows": "new_rows",
                  "health.newest_row_at": "newest_row_at", "health.local_loss": "local_loss",
                  "health.model_version": "model_version"}
_INTEGER = {"rows", "new_rows", "model_version"}


def health_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The fleet columns of a reply's metrics (a missing or negative value is NULL)."""
    row: dict[str, Any] = {}
    for key, column in HEALTH_COLUMNS.items():
        value = metrics.get(key)
        if value is None or float(value) < 0:
            row[column] = None
        else:
            row[column] = int(value) if column in _INTEGER else float(value)
    return row


class FleetRecorder:
    """Writes one federated run's reports to the store's fleet table."""

    def __init__(self, store: Store, federation: str, run_id: str) -> None:
        self.table = FleetTable(store)
        self.federation, self.run_id = federation, run_id

    def record(self, round_number: int, reports: Iterable[dict[str, Any]]) -> None:
        """``reports``: dicts with client, node_id, status and (when it answered) metrics."""
        now = time.time()
        rows = []
        for report in reports:
            metrics = report.get("metrics") or {}
            rows.append({"federation": self.federation, "client": report["client"],
                         "node_id": str(report["node_id"]), "run_id": self.run_id,
                         "round": round_number,
                         "reported_at": float(metrics.get("health.reported_at", now)),
                         "status": report["status"], "error": (report.get("error") or "")[:500]
                         or None, **health_row(metrics)})
        self.table.append(rows)


_GAUGES = (("up", "1 when the client answered its last round", None),
           ("cpu_percent", "CPU use while handling its last message (%)", "cpu_percent"),
           ("memory_mb", "ClientApp resident memory (MiB)", "memory_mb"),
           ("rows", "rows the client holds", "rows"),
           ("new_rows", "rows new since its previous report", "new_rows"),
           ("data_age_seconds", "age of its newest row", "newest_row_at"),
           ("local_loss", "training loss of its last local update", "local_loss"),
           ("model_version", "registered version it trained from", "model_version"),
           ("last_seen_seconds", "seconds since its last report", "reported_at"),
           ("round", "round of its last report", "round"))


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(rows: Iterable[dict[str, Any]], now: float | None = None) -> str:
    """Gauges ``amml_fleet_*{federation, client}`` of the newest report per client."""
    now = time.time() if now is None else now
    rows = list(rows)
    lines: list[str] = []
    for name, help_text, column in _GAUGES:
        lines += [f"# HELP amml_fleet_{name} {help_text}", f"# TYPE amml_fleet_{name} gauge"]
        for row in rows:
            if column is None:
                value: Any = 1 if row.get("status") == "ok" else 0
            elif column in ("newest_row_at", "reported_at"):
                value = None if row.get(column) is None else now - float(row[column])
            else:
                value = row.get(column)
            if value is None:
                continue
            labels = f'federation="{_label(row["federation"])}",client="{_label(row["client"])}"'
            lines.append(f"amml_fleet_{name}{{{labels}}} {value:g}" if isinstance(value, float)
                         else f"amml_fleet_{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"
