"""Drift events found by ``amml monitor`` (issue: drift monitoring).
Its tables are defined in ``amml.store.drift_events``.

Reserved slot: until its capability lands this revision changes nothing, so the chain of
revisions stays linear while the capabilities land in any order.

Revision ID: 0006
Revises: 0005
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
