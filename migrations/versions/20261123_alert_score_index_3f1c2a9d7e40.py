"""alert: an index on score, for the municipality-wide queue (highest score first, a page at a
time): both databases walk it backwards and sort only ties, so no DESC column is needed (a DESC
index column is not reflected on SQLite, which the migration test compares)

Revision ID: 3f1c2a9d7e40
Revises: c4e8a1f07b52
Create Date: 2026-11-23 16:40:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = '3f1c2a9d7e40'
down_revision: str | None = 'c4e8a1f07b52'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_alert_score', 'alert', ['score'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alert_score', table_name='alert')
