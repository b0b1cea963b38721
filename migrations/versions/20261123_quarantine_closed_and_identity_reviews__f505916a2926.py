"""quarantine closed and identity reviews decided by a person

Revision ID: f505916a2926
Revises: ba91be721334
Create Date: 2026-11-23 13:24:32.156354
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'f505916a2926'
down_revision: str | None = 'ba91be721334'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('identity_review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decided_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_identity_review_decided_by_staff_user'), 'staff_user', ['decided_by'], ['id'])

    with op.batch_alter_table('quarantined_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closing', sa.Enum('reprocessed', 'dismissed', name='quarantineclosing', native_enum=False), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_quarantined_record_closed_by_staff_user'), 'staff_user', ['closed_by'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('quarantined_record', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_quarantined_record_closed_by_staff_user'), type_='foreignkey')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closing')

    with op.batch_alter_table('identity_review', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_identity_review_decided_by_staff_user'), type_='foreignkey')
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decided_by')

