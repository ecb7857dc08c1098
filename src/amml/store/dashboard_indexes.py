"""Indexes the dashboard's pages need at 10,000 runs and 1,000,000 metric points.

Declared here, on the tables of :mod:`amml.store.metadata.schema`, so the declared schema and
migration ``0010_dashboard_indexes`` agree (``tests/store/test_metadata.py`` compares them);
``amml.store.metadata`` imports this module, so every reader of the schema sees them.

* runs newest first, whole or filtered by workflow, status or both: ``ORDER BY started_at
  DESC LIMIT 50`` walks an index instead of sorting 10,000 rows (with both filters, SQLite
  without statistics otherwise picks the status index and scans most runs);
* the last value of each metric of fifty runs (the runs table's metric columns): the
  highest step per (run, key) and the points at it come from the index alone;
* the newest detector steps (the anomalies page) among every step of every run;
* model versions by run (the lineage graph: runs to the versions they registered);
* the prediction log by time across models (the serving page's last hour).
"""

from __future__ import annotations

from sqlalchemy import Index

from amml.store.metadata import schema

#: name -> (table, columns); migration 0010 creates exactly these.
DASHBOARD_INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ix_runs_started_at": ("runs", ("started_at",)),
    "ix_runs_workflow_started": ("runs", ("workflow", "started_at")),
    "ix_runs_status_started": ("runs", ("status", "started_at")),
    "ix_runs_workflow_status_started": ("runs", ("workflow", "status", "started_at")),
    "ix_metrics_run_key_step": ("metrics", ("run_id", "key", "step", "timestamp")),
    "ix_steps_op_started": ("steps", ("op", "started_at")),
    "ix_model_versions_run": ("model_versions", ("run_id",)),
    "ix_prediction_log_received": ("prediction_log", ("received_at",)),
}


def _declare() -> None:
    for name, (table_name, columns) in DASHBOARD_INDEXES.items():
        table = schema.metadata.tables[table_name]
        if not any(index.name == name for index in table.indexes):
            Index(name, *(table.c[column] for column in columns))


_declare()
