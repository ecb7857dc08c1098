"""Metric values may be NaN or +-Inf: ``metrics.value`` becomes nullable and the new
``metrics.value_kind`` says which non-finite value a NULL stands for ('nan', 'inf', '-inf').
Existing rows are finite and keep their values (kind NULL).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop NOT NULL in place, so it copies the table (once);
    # PostgreSQL alters the column in place.
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("value", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("value_kind", sa.String(8), nullable=True))


def downgrade() -> None:
    # non-finite points cannot be kept in a NOT NULL column: they are dropped
    op.execute("DELETE FROM metrics WHERE value IS NULL")
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("value_kind")
        batch.alter_column("value", existing_type=sa.Float(), nullable=False)
