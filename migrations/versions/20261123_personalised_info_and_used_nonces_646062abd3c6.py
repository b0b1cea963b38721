"""Personalised information names its template (topic); link nonces are deleted when used

A used nonce kept the LINE account it linked: after unlinking, that row still tied the LINE
account to the person. Used nonces are deleted here, and from now on when they come back.

Revision ID: 646062abd3c6
Revises: 9b9d8b38655f
Create Date: 2026-11-23 12:45:57.805665
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '646062abd3c6'
down_revision: str | None = '9b9d8b38655f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM line_link_nonce WHERE used_at IS NOT NULL")
    with op.batch_alter_table('line_link_nonce', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_line_link_nonce_line_account_id_line_account'), type_='foreignkey')
        batch_op.drop_column('used_at')
        batch_op.drop_column('line_account_id')

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('topic')

    with op.batch_alter_table('line_link_nonce', schema=None) as batch_op:
        batch_op.add_column(sa.Column('line_account_id', sa.INTEGER(), nullable=True))
        batch_op.add_column(sa.Column('used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_line_link_nonce_line_account_id_line_account'), 'line_account', ['line_account_id'], ['id'])

