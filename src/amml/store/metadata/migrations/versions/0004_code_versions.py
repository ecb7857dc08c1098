"""Code versions: the workflow file's digest, git commit and dirty flag, and the AMML version
of each run and each registered model version. Nullable: earlier rows stay as they were.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("runs", "model_versions")
COLUMNS = ("workflow_digest", "code_commit", "code_dirty", "amml_version")


def _columns() -> list[sa.Column]:
    return [sa.Column("workflow_digest", sa.String(64)), sa.Column("code_commit", sa.String(64)),
            sa.Column("code_dirty", sa.Boolean), sa.Column("amml_version", sa.String(64))]


def upgrade() -> None:
    # Plain ADD COLUMN of nullable columns without a constraint works in place on SQLite and
    # PostgreSQL alike: no table copy, existing rows get NULL.
    for table in TABLES:
        for column in _columns():
            op.add_column(table, column)


def downgrade() -> None:
    for table in TABLES:
        # batch mode: SQLite before 3.35 cannot drop a column in place
        with op.batch_alter_table(table) as batch:
            for name in COLUMNS:
                batch.drop_column(name)
