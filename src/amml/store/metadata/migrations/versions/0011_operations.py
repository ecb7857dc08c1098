"""The operations loop: trigger runs of ``amml agent`` (with the triggers' cursors and the
agents' locks) and promotion decisions of the policy (tables defined in
``amml.store.operations``).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "trigger_cursors",
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("workflow", "trigger"),
    )
    op.create_table(
        "trigger_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_trigger_runs_workflow", "trigger_runs", ["workflow", "started_at"])
    op.create_table(
        "agent_locks",
        sa.Column("workflow", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "promotion_decisions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("candidate_version", sa.Integer, nullable=False),
        sa.Column("champion_version", sa.Integer),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("ledger", sa.String(255)),
        sa.Column("ledger_seq", sa.Integer),
        sa.Column("decided_at", sa.Float, nullable=False),
    )
    op.create_index("ix_promotion_decisions_name", "promotion_decisions",
                    ["name", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_promotion_decisions_name", "promotion_decisions")
    op.drop_table("promotion_decisions")
    op.drop_table("agent_locks")
    op.drop_index("ix_trigger_runs_workflow", "trigger_runs")
    op.drop_table("trigger_runs")
    op.drop_table("trigger_cursors")
