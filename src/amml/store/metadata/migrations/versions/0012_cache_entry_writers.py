"""Cache entries by the step that wrote them, (run_id, step_name): which later steps reused a
step's outputs (lineage's "used by", the dashboard's lineage trace) was a scan of every step
of every run, joined to the cache entries by key. The same index is declared on
``cache_entries`` in ``amml.store.metadata.schema``.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cache_entries_run_step", "cache_entries", ["run_id", "step_name"])


def downgrade() -> None:
    op.drop_index("ix_cache_entries_run_step", table_name="cache_entries")
