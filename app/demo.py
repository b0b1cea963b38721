"""The demo's first day: some families consent, then the first sync brings their children's records in.

From here on the demo world's school records live in the stand-ins (mocks/) and reach tsunagu's
tables only through a consented sync, as in production. A share of the families consent; the
rest stay without consent, as in life, and their children have a roster row and nothing else.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.config import Settings
from app.core.db import session_scope
from app.roster.models import GuardianLink
from connectors import service
from connectors.clients import school_clients
from connectors.models import SyncRun
from consent import service as consent_service
from consent.scopes import Purpose, Scope

CONSENT_PERCENT = 60
SCHOOL_SCOPES = [s for s in Scope if s.value.startswith("school.")]
NOTICE_VERSION = "demo-1"
NOTICE_HASH = hashlib.sha256(b"tsunagu demo consent notice v1").hexdigest()


def _consents(student_id: int) -> bool:
    # Deterministic, spread over schools and grades: the same demo always has the same families.
    digest = hashlib.sha256(f"demo-consent:{student_id}".encode()).digest()
    return digest[0] * 100 < CONSENT_PERCENT * 256


def grant_demo_consents(*, session: Session) -> int:
    """One guardian of each chosen child consents to every school category; how many children."""
    first_links = sa.select(sa.func.min(GuardianLink.id)).group_by(col(GuardianLink.student_id))
    first_guardians = session.exec(
        select(GuardianLink.student_id, GuardianLink.guardian_id)
        .where(col(GuardianLink.id).in_(first_links))
        .order_by(col(GuardianLink.student_id))
    ).all()
    granted = 0
    for student_id, guardian_id in first_guardians:
        if not _consents(student_id):
            continue
        consent_service.create_grant(
            session=session,
            actor=Actor(kind=ActorKind.guardian, ref=f"guardian:{guardian_id}", organisation="家庭"),
            guardian_id=guardian_id,
            student_id=student_id,
            scopes=SCHOOL_SCOPES,
            purposes=[Purpose.early_support, Purpose.support_info],
            notice_version=NOTICE_VERSION,
            notice_hash=NOTICE_HASH,
        )
        granted += 1
    return granted


async def first_sync(*, engine: Engine, settings: Settings) -> list[SyncRun]:
    """Queue and run the first sync of every school from both school stand-ins."""
    with session_scope(engine) as session:
        service.enqueue(session=session, requested_by="demo")
    clients = school_clients(settings)
    try:
        return await service.work(engine=engine, worker="demo", clients=clients, settings=settings)
    finally:
        await clients.aclose()
