"""Edge devices, their keys, group assignments, the edge variants of model versions and the
devices' reports (tables defined in ``amml.store.devices``).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "edge_devices",
        sa.Column("device_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("last_seen", sa.Float),
        sa.Column("last_report", sa.Text),
        sa.UniqueConstraint("name", name="uq_edge_devices_name"),
    )
    op.create_index("ix_edge_devices_group", "edge_devices", ["group_name"])
    op.create_table(
        "edge_assignments",
        sa.Column("group_name", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "edge_variants",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("parity_max_abs", sa.Float, nullable=False),
        sa.Column("mse_delta_pct", sa.Float),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("ledger_seq", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_edge_variants_version", "edge_variants", ["name", "version", "format"])
    op.create_table(
        "edge_reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_edge_reports_device", "edge_reports", ["device_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_edge_reports_device", "edge_reports")
    op.drop_table("edge_reports")
    op.drop_index("ix_edge_variants_version", "edge_variants")
    op.drop_table("edge_variants")
    op.drop_table("edge_assignments")
    op.drop_index("ix_edge_devices_group", "edge_devices")
    op.drop_table("edge_devices")
