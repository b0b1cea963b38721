"""audit log: several independent hash chains, each with its own head

Revision ID: 5e1c0a7d2b94
Revises: 963f88bb9ebc
Create Date: 2026-11-23 12:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5e1c0a7d2b94'
down_revision: str | None = '963f88bb9ebc'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Entries written so far form chain 1 (the old single head's id); chains 2..16 start empty.
# The hash of an entry never covered its numbering, so existing hashes stay valid.
_CHAINS = 16
# Rebuilding the table on SQLite drops its triggers: the append-only rule is restored after.
_SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: DELETE refused'); END",
]
_head = sa.table('audit_chain_head', sa.column('id', sa.Integer), sa.column('last_seq', sa.Integer),
                 sa.column('last_hash', sa.String))


def _rebuild(primary_key: list[str], old_index: tuple[str, list[str]], new_index: tuple[str, list[str]],
             add_chain: bool) -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        op.execute('DROP TRIGGER IF EXISTS audit_entry_no_update')
        op.execute('DROP TRIGGER IF EXISTS audit_entry_no_delete')
    with op.batch_alter_table('audit_entry', schema=None, recreate='always' if sqlite else 'auto') as batch_op:
        batch_op.drop_index(old_index[0])
        if add_chain:
            # ADD COLUMN with a default writes no UPDATE: the PostgreSQL trigger stays quiet.
            batch_op.add_column(sa.Column('chain', sa.Integer(), autoincrement=False, nullable=False,
                                          server_default='1'))
        batch_op.drop_constraint('pk_audit_entry', type_='primary')
        if not add_chain:
            batch_op.drop_column('chain')
        batch_op.create_primary_key('pk_audit_entry', primary_key)
        batch_op.create_index(new_index[0], new_index[1], unique=False)
    if add_chain:
        with op.batch_alter_table('audit_entry', schema=None) as batch_op:
            batch_op.alter_column('chain', server_default=None)
    if sqlite:
        for statement in _SQLITE_APPEND_ONLY:
            op.execute(statement)


def upgrade() -> None:
    _rebuild(['chain', 'seq'], ('ix_audit_entry_student_seq', []),
             ('ix_audit_entry_student_at', ['student_id', 'at']), add_chain=True)
    op.bulk_insert(_head, [{'id': n, 'last_seq': 0, 'last_hash': '0' * 64} for n in range(2, _CHAINS + 1)])


def downgrade() -> None:
    in_other_chains = op.get_bind().execute(sa.text('SELECT count(*) FROM audit_entry WHERE chain <> 1')).scalar()
    if in_other_chains:
        raise RuntimeError('audit entries exist in chains 2..16: one chain cannot hold them without re-hashing')
    op.execute(_head.delete().where(_head.c.id > 1))
    _rebuild(['seq'], ('ix_audit_entry_student_at', []), ('ix_audit_entry_student_seq', ['student_id', 'seq']),
             add_chain=False)
