"""Indexes the dashboard's pages need at 10,000 runs and 1,000,000 metric points (issue: dashboard).

Reserved slot: until its capability lands this revision changes nothing, so the chain of
revisions stays linear while the capabilities land in any order.

Revision ID: 0010
Revises: 0009
"""

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
