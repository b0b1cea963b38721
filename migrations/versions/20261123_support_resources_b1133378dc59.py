"""The support-resource directory: local places to turn to, kept by municipal staff

Revision ID: b1133378dc59
Revises: f0643d2beab9
Create Date: 2026-11-23 10:02:57.075890
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'b1133378dc59'
down_revision: str | None = 'f0643d2beab9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('support_resource',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name_ja', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sa.Enum('kodomo_shokudo', 'consultation', 'learning_support', 'ibasho', 'young_carer', 'school_aid', 'financial', 'health', 'other', name='resourcekind', native_enum=False), nullable=False),
    sa.Column('area', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('age_min', sa.Integer(), nullable=False),
    sa.Column('age_max', sa.Integer(), nullable=False),
    sa.Column('needs', sa.JSON(), nullable=False),
    sa.Column('hours_ja', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('hours_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('cost_ja', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('cost_en', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('contact', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('accessibility', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('description_ja', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('description_en', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('age_min <= age_max', name=op.f('ck_support_resource_age_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_resource')),
    sa.UniqueConstraint('name_ja', 'area', name=op.f('uq_support_resource_name_ja_area'))
    )
    with op.batch_alter_table('support_resource', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_resource_area'), ['area'], unique=False)
        batch_op.create_index(batch_op.f('ix_support_resource_kind'), ['kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('support_resource', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_resource_kind'))
        batch_op.drop_index(batch_op.f('ix_support_resource_area'))

    op.drop_table('support_resource')
