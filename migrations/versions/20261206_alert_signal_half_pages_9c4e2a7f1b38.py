"""alert and signal: pages left half free, room for the next version of every row on them

Revision ID: 9c4e2a7f1b38
Revises: 5e8a1f3c7b92
Create Date: 2026-12-06 06:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '9c4e2a7f1b38'
down_revision: str | None = '5e8a1f3c7b92'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A fifth of each page (2b7d4e9a1c56) was too little: a signal row is about 800 bytes, ten to a
# page, and on a day of colds a run rewrites 45 % of the signals and a third of the open alerts,
# so most new versions found no room on their page and were written elsewhere, with a new entry
# in every index. At 250,000 children (bench/screen.py's incremental run, 29,717 signals and
# 13,525 alerts rewritten) the signals' UPDATE went 537 → 232 ms and wrote 29,717 WAL records
# instead of 102,981; the alerts' 248 → 174 ms (those whose score changed still touch the score
# indexes). The tables are small (a city's open alerts and their signals), so doubling them
# costs little. PostgreSQL only; rows written from now on get the room.
_TABLES = ('alert', 'signal')


def _fillfactor(percent: int) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in _TABLES:
        op.execute(f'ALTER TABLE {table} SET (fillfactor = {percent})')


def upgrade() -> None:
    _fillfactor(50)


def downgrade() -> None:
    _fillfactor(80)
