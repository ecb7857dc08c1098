"""Initial schema: runs, params, steps, artifacts, lineage, cache entries, metrics.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("ir_digest", sa.String(64)),
        sa.Column("ir_json", sa.Text),
        sa.Column("source_file", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_workflow", "runs", ["workflow"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "params",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("op", sa.String(200), nullable=False),
        sa.Column("op_version", sa.String(32), nullable=False),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_steps_cache_key", "steps", ["cache_key"])
    op.create_table(
        "artifacts",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "lineage",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("step_name", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("port", sa.String(200), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
    )
    op.create_index("ix_lineage_artifact_digest", "lineage", ["artifact_digest"])
    op.create_index("ix_lineage_run_step", "lineage", ["run_id", "step_name"])
    op.create_table(
        "cache_entries",
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("partial_key", sa.String(64), nullable=False),
        sa.Column("op", sa.String(200), nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("step_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_cache_entries_partial_key", "cache_entries", ["partial_key"])
    op.create_table(
        "metrics",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("step_name", sa.String(200), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_run_key", "metrics", ["run_id", "key"])


def downgrade() -> None:
    for table in ("metrics", "cache_entries", "lineage", "artifacts", "steps", "params", "runs"):
        op.drop_table(table)
