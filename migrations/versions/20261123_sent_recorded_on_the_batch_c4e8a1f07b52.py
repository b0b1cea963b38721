"""a sent batch is recorded on the batch row only: notification.sent_at goes (the batch's
sent_at is when its notifications were sent)

Revision ID: c4e8a1f07b52
Revises: 9e9300dcd177
Create Date: 2026-11-23 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c4e8a1f07b52'
down_revision: str | None = '9e9300dcd177'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows marked sent one by one before this revision keep their status; their time is the batch's.
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('sent_at')


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
