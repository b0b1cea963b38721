"""Universal notices (campaigns) and the outbox: batches with fixed retry keys, one row per recipient

Revision ID: 963f88bb9ebc
Revises: 923677f919ba
Create Date: 2026-11-23 10:31:44.653987
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '963f88bb9ebc'
down_revision: str | None = '923677f919ba'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notice_campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('body_ja', sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=False),
    sa.Column('body_en', sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=False),
    sa.Column('contact_ja', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('contact_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('resource_ids', sa.JSON(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('draft', 'scheduled', 'cancelled', name='campaignstatus', native_enum=False), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_notice_campaign_created_by_staff_user')),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_notice_campaign_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_campaign'))
    )
    op.create_table('notification_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('multicast', 'push', name='batchkind', native_enum=False), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('retry_key', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sending', 'sent', 'failed', 'cancelled', name='batchstatus', native_enum=False), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['notice_campaign.id'], name=op.f('fk_notification_batch_campaign_id_notice_campaign')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_batch')),
    sa.UniqueConstraint('retry_key', name=op.f('uq_notification_batch_retry_key'))
    )
    with op.batch_alter_table('notification_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_batch_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index('ix_notification_batch_due', ['status', 'not_before'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('line_account_id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=True),
    sa.Column('needs_link', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', 'cancelled', 'skipped', name='notificationstatus', native_enum=False), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['notification_batch.id'], name=op.f('fk_notification_batch_id_notification_batch')),
    sa.ForeignKeyConstraint(['campaign_id'], ['notice_campaign.id'], name=op.f('fk_notification_campaign_id_notice_campaign')),
    sa.ForeignKeyConstraint(['line_account_id'], ['line_account.id'], name=op.f('fk_notification_line_account_id_line_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_account_created', ['line_account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_notification_batch_status', ['batch_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_grant_id'), ['grant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_grant_id'))
        batch_op.drop_index(batch_op.f('ix_notification_campaign_id'))
        batch_op.drop_index('ix_notification_batch_status')
        batch_op.drop_index('ix_notification_account_created')

    op.drop_table('notification')
    with op.batch_alter_table('notification_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_batch_due')
        batch_op.drop_index(batch_op.f('ix_notification_batch_campaign_id'))

    op.drop_table('notification_batch')
    op.drop_table('notice_campaign')
