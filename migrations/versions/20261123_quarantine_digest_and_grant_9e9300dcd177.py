"""quarantined records: the payload's digest (a repeat is not quarantined again) and the grant
it was obtained under (deleted with the family's withdrawal)

Revision ID: 9e9300dcd177
Revises: f505916a2926
Create Date: 2026-11-23 16:00:00.000000
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '9e9300dcd177'
down_revision: str | None = 'f505916a2926'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('quarantined_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('grant_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_quarantined_record_grant_id'), ['grant_id'], unique=False)
    # Records quarantined before this revision get their digest, so a run after the upgrade
    # recognises them as already quarantined. Which grant they came under was not kept.
    table = sa.table('quarantined_record', sa.column('id', sa.Integer), sa.column('payload', sa.Text),
                     sa.column('record_ref', sa.String), sa.column('payload_digest', sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(table.c.id, table.c.record_ref, table.c.payload)).all()
    if rows:
        connection.execute(
            table.update().where(table.c.id == sa.bindparam('row_id')).values(payload_digest=sa.bindparam('digest')),
            # connectors.quarantine.digest as of this revision (a migration keeps its own copy)
            [{'row_id': i, 'digest': hashlib.sha256(f"{r or ''}\n{p}".encode()).hexdigest()} for i, r, p in rows],
        )


def downgrade() -> None:
    with op.batch_alter_table('quarantined_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantined_record_grant_id'))
        batch_op.drop_column('grant_id')
        batch_op.drop_column('payload_digest')
