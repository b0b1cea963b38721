"""private_key_jwt: a client's public keys, and the assertions already used (single-use jti)

Revision ID: ba91be721334
Revises: 646062abd3c6
Create Date: 2026-11-23 13:59:35.455904
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'ba91be721334'
down_revision: str | None = '646062abd3c6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('oauth_client_assertion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('jti_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oauth_client.id'], name=op.f('fk_oauth_client_assertion_client_id_oauth_client')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_client_assertion')),
    sa.UniqueConstraint('client_id', 'jti_hash', name=op.f('uq_oauth_client_assertion_client_id_jti_hash'))
    )
    with op.batch_alter_table('oauth_client_assertion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_client_assertion_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('jwks', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.drop_column('jwks')

    with op.batch_alter_table('oauth_client_assertion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_client_assertion_expires_at'))

    op.drop_table('oauth_client_assertion')
