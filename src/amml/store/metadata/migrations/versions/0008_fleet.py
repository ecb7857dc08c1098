"""Federated clients' health reports and rounds (issue: federated).
Its tables are defined in ``amml.store.fleet``.

Reserved slot: until its capability lands this revision changes nothing, so the chain of
revisions stays linear while the capabilities land in any order.

Revision ID: 0008
Revises: 0007
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
