"""audit log: a use lists the scopes it read (space-separated, as an OAuth scope does)

Revision ID: 7c2e91d4a6b3
Revises: 3f1c2a9d7e40
Create Date: 2026-11-23 16:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7c2e91d4a6b3'
down_revision: str | None = '3f1c2a9d7e40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rebuilding the table on SQLite drops its triggers: the append-only rule is restored after.
# On PostgreSQL widening a varchar rewrites no row, so its append-only trigger stays quiet.
_SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: DELETE refused'); END",
]


def _scope_length(length: int) -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        op.execute('DROP TRIGGER IF EXISTS audit_entry_no_update')
        op.execute('DROP TRIGGER IF EXISTS audit_entry_no_delete')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.alter_column('scope', type_=sa.String(length=length), existing_nullable=True)
    if sqlite:
        for statement in _SQLITE_APPEND_ONLY:
            op.execute(statement)


def upgrade() -> None:
    _scope_length(256)


def downgrade() -> None:
    listing = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_entry WHERE scope LIKE '% %'")).scalar()
    if listing:
        raise RuntimeError('audit entries list several scopes: one scope per entry cannot hold them')
    _scope_length(32)
