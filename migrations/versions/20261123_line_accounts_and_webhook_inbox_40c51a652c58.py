"""LINE accounts (follow state, notice setting, link to a guardian or student), the webhook inbox, link nonces

Revision ID: 40c51a652c58
Revises: 9b703f684c7d
Create Date: 2026-11-23 09:50:36.616688
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '40c51a652c58'
down_revision: str | None = '9b703f684c7d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('line_webhook_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_event_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('redelivery', sa.Boolean(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_webhook_event')),
    sa.UniqueConstraint('webhook_event_id', name=op.f('uq_line_webhook_event_webhook_event_id'))
    )
    with op.batch_alter_table('line_webhook_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_line_webhook_event_received_at'), ['received_at'], unique=False)

    op.create_table('line_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('line_user_id', sqlmodel.sql.sqltypes.AutoString(length=33), nullable=True),
    sa.Column('following', sa.Boolean(), nullable=False),
    sa.Column('notices_enabled', sa.Boolean(), nullable=False),
    sa.Column('followed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unfollowed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('guardian_id', sa.Integer(), nullable=True),
    sa.Column('student_id', sa.Integer(), nullable=True),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('guardian_id IS NULL OR student_id IS NULL', name=op.f('ck_line_account_linked_to_one_person')),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], name=op.f('fk_line_account_guardian_id_guardian')),
    sa.ForeignKeyConstraint(['student_id'], ['student.id'], name=op.f('fk_line_account_student_id_student')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_account')),
    sa.UniqueConstraint('line_user_id', name=op.f('uq_line_account_line_user_id'))
    )
    with op.batch_alter_table('line_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_line_account_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_line_account_student_id'), ['student_id'], unique=False)

    op.create_table('line_link_nonce',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nonce_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('principal_kind', sa.Enum('guardian', 'student', 'staff', name='principalkind', native_enum=False), nullable=False),
    sa.Column('principal_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('line_account_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['line_account_id'], ['line_account.id'], name=op.f('fk_line_link_nonce_line_account_id_line_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_link_nonce')),
    sa.UniqueConstraint('nonce_hash', name=op.f('uq_line_link_nonce_nonce_hash'))
    )


def downgrade() -> None:
    op.drop_table('line_link_nonce')
    with op.batch_alter_table('line_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_line_account_student_id'))
        batch_op.drop_index(batch_op.f('ix_line_account_guardian_id'))

    op.drop_table('line_account')
    with op.batch_alter_table('line_webhook_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_line_webhook_event_received_at'))

    op.drop_table('line_webhook_event')
