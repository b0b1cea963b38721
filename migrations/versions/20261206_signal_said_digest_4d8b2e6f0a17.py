"""signal: a digest of what the signal says, compared by screening runs instead of its facts

Revision ID: 4d8b2e6f0a17
Revises: 9c4e2a7f1b38
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4d8b2e6f0a17'
down_revision: str | None = '9c4e2a7f1b38'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Empty for the signals written before it: a run compares an empty digest as changed, so each
# open signal is rewritten once, with its digest, by the first run that screens its child.
# (A nullable column without a default is added without rewriting the table.)


def upgrade() -> None:
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.add_column(sa.Column('said_digest', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.drop_column('said_digest')
