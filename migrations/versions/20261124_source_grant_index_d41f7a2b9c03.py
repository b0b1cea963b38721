"""source tables: no index of their own on grant_id (erasure reads the child's rows by the natural key)

Revision ID: d41f7a2b9c03
Revises: 6c2f0a9d7e15
Create Date: 2026-11-24 07:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'd41f7a2b9c03'
down_revision: str | None = '6c2f0a9d7e15'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A grant is one child's: deleting what was obtained under it reads that child's rows by the
# index of each table's natural key, which starts with the child (app.sources.erasure). The
# grant_id index served only that delete, and every row the sync writes paid for it.
_TABLES = (
    'attendance_day',
    'nurse_visit',
    'grade_record',
    'learning_activity',
    'assignment_submission',
    'mood_checkin',
    'fee_status',
    'school_aid_status',
    'household_info',
    'benefit_status',
)


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_grant_id')


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_grant_id', ['grant_id'], unique=False)
