"""alert, signal: last_run_id is no longer a foreign key

Revision ID: 7a1c5e9b3d20
Revises: 4d8b2e6f0a17
Create Date: 2026-12-06 10:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '7a1c5e9b3d20'
down_revision: str | None = '4d8b2e6f0a17'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every screening run rewrites last_run_id on each alert and signal it refreshes (46,000 rows on
# a day of colds at 250,000 children), and PostgreSQL checked each new value against
# screening_run, one lookup and row lock per row. The run writes its own id, after its row
# was committed, and runs are never deleted; the run that opened an alert or first wrote a
# signal (opened_run_id, first_run_id) stays a foreign key.
_LAST_RUN = (('alert', 'fk_alert_last_run_id_screening_run'), ('signal', 'fk_signal_last_run_id_screening_run'))


def upgrade() -> None:
    for table, constraint in _LAST_RUN:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(constraint, type_='foreignkey')


def downgrade() -> None:
    for table, constraint in _LAST_RUN:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(constraint, 'screening_run', ['last_run_id'], ['id'])
