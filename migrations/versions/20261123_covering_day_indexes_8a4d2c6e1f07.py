"""attendance: the day index carries the mark and the reason (covering)

Revision ID: 8a4d2c6e1f07
Revises: 5d0e6b1c2f3a
Create Date: 2026-11-23 22:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '8a4d2c6e1f07'
down_revision: str | None = '5d0e6b1c2f3a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An incremental screening asks "who was absent (or excused, late) on these days" for every
# attendance rule; with (day, student_id) alone each row cost a heap page (a day's marks lie on
# as many pages as there are children). With the mark and the reason in the index, those
# queries read the index only. Not done for mood_checkin: with (day, student_id, weather) the
# planner read a city's 14-day window through that index and sorted it by child, and the full
# run's mood query took 25 s instead of 8 s at 250,000 children (one run each, load 3-5).
_INDEXES = [
    ('attendance_day', 'ix_attendance_day_day_student', ['day', 'student_id'],
     'ix_attendance_day_day_student_mark', ['day', 'student_id', 'mark', 'reason']),
]


def upgrade() -> None:
    for table, old, _old_columns, new, new_columns in _INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(new, new_columns, unique=False)
            batch_op.drop_index(old)


def downgrade() -> None:
    for table, old, old_columns, new, _new_columns in _INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(old, old_columns, unique=False)
            batch_op.drop_index(new)
