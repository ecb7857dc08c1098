"""The operations loop: trigger runs of ``amml agent``, promotions by policy and model cards
(issue: operations loop). Its tables are defined in ``amml.store.operations``.

Reserved slot: until its capability lands this revision changes nothing, so the chain of
revisions stays linear while the capabilities land in any order.

Revision ID: 0011
Revises: 0010
"""

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
