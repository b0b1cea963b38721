"""consent grants: an index on expires_at for the every-minute expiry job

Revision ID: 5d0e6b1c2f3a
Revises: 7c2e91d4a6b3
Create Date: 2026-11-23 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '5d0e6b1c2f3a'
down_revision: str | None = '7c2e91d4a6b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # consent.tasks.expire_due_grants asks every minute for grants whose expiry has passed;
    # without this it read every grant of the municipality each time.
    op.create_index('ix_consent_grant_expires_at', 'consent_grant', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_consent_grant_expires_at', table_name='consent_grant')
