"""Federated clients' health reports: the ``fleet_reports`` table (``amml.store.fleet``).
Rounds themselves are ledger entries (kind ``round``) and registered model versions.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fleet_reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("federation", sa.String(200), nullable=False),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cpu_percent", sa.Float()),
        sa.Column("memory_mb", sa.Float()),
        sa.Column("rows", sa.BigInteger()),
        sa.Column("new_rows", sa.BigInteger()),
        sa.Column("newest_row_at", sa.Float()),
        sa.Column("local_loss", sa.Float()),
        sa.Column("model_version", sa.Integer()),
        sa.Column("error", sa.String(500)),
    )
    op.create_index("ix_fleet_reports_client", "fleet_reports",
                    ["federation", "client", "reported_at"])


def downgrade() -> None:
    op.drop_index("ix_fleet_reports_client", table_name="fleet_reports")
    op.drop_table("fleet_reports")
