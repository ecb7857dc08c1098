"""Drift events found by ``amml monitor`` and the scores it computes per window
(tables defined in ``amml.store.drift_events``).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "drift_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("detected_at", sa.Float, nullable=False),
        sa.Column("drift_point", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    op.create_index("ix_drift_events_model", "drift_events", ["model", "detected_at"])
    op.create_table(
        "drift_scores",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
    )
    op.create_index("ix_drift_scores_model", "drift_scores", ["model", "at"])


def downgrade() -> None:
    op.drop_index("ix_drift_scores_model", "drift_scores")
    op.drop_table("drift_scores")
    op.drop_index("ix_drift_events_model", "drift_events")
    op.drop_table("drift_events")
