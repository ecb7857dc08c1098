"""Indexes the dashboard's pages need at 10,000 runs and 1,000,000 metric points (issue: dashboard).

Runs newest first (whole, by workflow, by status), the last value of a run's metrics,
model versions by run, the prediction log by time. The same indexes are declared in
``amml.store.dashboard_indexes``.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# written out rather than imported: a migration must keep meaning what it meant when written
INDEXES = {
    "ix_runs_started_at": ("runs", ["started_at"]),
    "ix_runs_workflow_started": ("runs", ["workflow", "started_at"]),
    "ix_runs_status_started": ("runs", ["status", "started_at"]),
    "ix_runs_workflow_status_started": ("runs", ["workflow", "status", "started_at"]),
    "ix_metrics_run_key_step": ("metrics", ["run_id", "key", "step", "timestamp"]),
    "ix_steps_op_started": ("steps", ["op", "started_at"]),
    "ix_model_versions_run": ("model_versions", ["run_id"]),
    "ix_prediction_log_received": ("prediction_log", ["received_at"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
