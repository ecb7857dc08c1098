"""Edge devices, their keys, assignments and reports (issue: edge).
Its tables are defined in ``amml.store.devices``.

Reserved slot: until its capability lands this revision changes nothing, so the chain of
revisions stays linear while the capabilities land in any order.

Revision ID: 0007
Revises: 0006
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
