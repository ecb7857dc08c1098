"""Ground truth and labels that flow back from the service: ``actuals``, ``label_tasks`` and
``labels`` (versioned); tables defined in ``amml.store.labels``.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "actuals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("column_name", sa.String(200), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    op.create_index("ix_actuals_model_ts", "actuals", ["model", "ts"])
    op.create_table(
        "label_tasks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("start_ts", sa.Float, nullable=False),
        sa.Column("end_ts", sa.Float, nullable=False),
        sa.Column("column_name", sa.String(200), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("labelled_at", sa.Float, nullable=True),
    )
    op.create_index("ix_label_tasks_model", "label_tasks", ["model", "created_at"])
    op.create_table(
        "labels",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("task_id", BigId, sa.ForeignKey("label_tasks.id"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("regions", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("task_id", "version", name="uq_labels_task_version"),
    )
    op.create_index("ix_labels_model", "labels", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_labels_model", "labels")
    op.drop_table("labels")
    op.drop_index("ix_label_tasks_model", "label_tasks")
    op.drop_table("label_tasks")
    op.drop_index("ix_actuals_model_ts", "actuals")
    op.drop_table("actuals")
