"""alert and signal: pages left 20 % free, so a screening run's refreshes stay on their page

Revision ID: 2b7d4e9a1c56
Revises: 8f3a6c1d2e47
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '2b7d4e9a1c56'
down_revision: str | None = '8f3a6c1d2e47'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A screening run refreshes thousands of alerts and signals in place. An update that changes no
# indexed column can stay on its page, with no new index entries (a HOT update), only if the
# page has room; pages filled to the brim by a run's COPY had none. PostgreSQL only: SQLite has
# no such setting. Rows written from now on get the room.
_TABLES = ('alert', 'signal')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in _TABLES:
        op.execute(f'ALTER TABLE {table} SET (fillfactor = 80)')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in _TABLES:
        op.execute(f'ALTER TABLE {table} RESET (fillfactor)')
