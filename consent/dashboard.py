"""What the guardian's dashboard shows and does: children, grants with receipts and history,
the municipality's own consent, pause / resume / revoke, and who used the child's data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.actors import ActorKind
from app.core.errors import BadRequest, NotFound
from app.roster.models import GuardianLink, Student
from consent import service
from consent.authorize import guardian_actor, linked_children
from consent.models import Client, ConsentEvent, ConsentGrant, ConsentReceipt, GrantEventKind, GrantStatus
from consent.notice import DATA_LIFE_DAYS, Notice, build_notice
from consent.scopes import PURPOSE_WORDING, SCOPE_WORDING, Purpose, Scope

_NOT_FOUND = "見つかりません / not found"
ACTIONS = {
    "pause": GrantEventKind.paused,
    "resume": GrantEventKind.resumed,
    "revoke": GrantEventKind.revoked,
}
_SCOPE_WORDS = {s.value: w for s, w in SCOPE_WORDING.items()}
_PURPOSE_WORDS = {p.value: w for p, w in PURPOSE_WORDING.items()}
ACTOR_LABELS = {
    ActorKind.staff: "職員 / staff",
    ActorKind.screening: "見守りの自動確認 / screening",
    ActorKind.connector: "データの取得 / data fetch",
    ActorKind.partner_client: "連携先 / partner",
    ActorKind.notify: "お知らせ / notices",
    ActorKind.guardian: "保護者 / guardian",
}


@dataclass(frozen=True)
class GrantView:
    grant: ConsentGrant
    recipient: str
    receipt: ConsentReceipt | None
    events: Sequence[ConsentEvent]

    @property
    def status(self) -> GrantStatus:
        """What the family should see now: a grant past its expiry is expired even before the
        periodic job has recorded it (the policy already refuses it)."""
        return service.effective_status(self.grant)

    @property
    def deletions(self) -> list[ConsentEvent]:
        return [e for e in self.events if e.kind is GrantEventKind.data_deleted]


@dataclass(frozen=True)
class UseView:
    at: datetime
    who: str
    organisation: str
    role: str | None
    category: str
    purpose: str


def child_of(*, session: Session, guardian_id: int, student_id: int) -> Student:
    """The child, if this guardian has a verified link to them; another family's child is 404."""
    link = session.exec(
        select(GuardianLink).where(
            GuardianLink.guardian_id == guardian_id,
            GuardianLink.student_id == student_id,
            col(GuardianLink.verified_at).is_not(None),
        )
    ).first()
    student = session.get(Student, student_id) if link else None
    if student is None:
        raise NotFound(_NOT_FOUND)
    return student


def grant_of(*, session: Session, guardian_id: int, grant_id: int) -> ConsentGrant:
    grant = session.get(ConsentGrant, grant_id)
    if grant is None:
        raise NotFound(_NOT_FOUND)
    child_of(session=session, guardian_id=guardian_id, student_id=grant.student_id)
    return grant


def children(*, session: Session, guardian_id: int) -> list[Student]:
    return linked_children(session=session, guardian_id=guardian_id)


def grants(*, session: Session, student_id: int) -> list[GrantView]:
    rows = session.exec(
        select(ConsentGrant)
        .where(ConsentGrant.student_id == student_id)
        .order_by(col(ConsentGrant.id).desc())
    ).all()
    views = []
    for grant in rows:
        client = session.get(Client, grant.client_id) if grant.client_id else None
        events = session.exec(
            select(ConsentEvent).where(ConsentEvent.grant_id == grant.id).order_by(col(ConsentEvent.id))
        ).all()
        views.append(
            GrantView(
                grant=grant,
                recipient=client.organisation if client else "加賀市",
                receipt=session.get(ConsentReceipt, grant.id),
                events=events,
            )
        )
    return views


def city_notice() -> Notice:
    return build_notice(recipient=None, scopes=list(Scope), purposes=list(Purpose))


def give_city_consent(
    *, session: Session, guardian_id: int, student_id: int, scopes: Sequence[str], purposes: Sequence[str]
) -> ConsentGrant:
    """The guardian's consent for the municipality's own use, exactly as ticked."""
    child_of(session=session, guardian_id=guardian_id, student_id=student_id)
    chosen_scopes = [Scope(s) for s in scopes if s in {x.value for x in Scope}]
    chosen_purposes = [Purpose(p) for p in purposes if p in {x.value for x in Purpose}]
    if not chosen_scopes or not chosen_purposes:
        raise BadRequest(
            "共有する項目と目的をそれぞれ1つ以上選んでください。 / Choose at least one item and one purpose."
        )
    notice = city_notice()
    return service.create_grant(
        session=session,
        actor=guardian_actor(guardian_id),
        guardian_id=guardian_id,
        student_id=student_id,
        scopes=chosen_scopes,
        purposes=chosen_purposes,
        notice_version=notice.version,
        notice_hash=notice.sha256,
        data_life_days=DATA_LIFE_DAYS,
    )


def act(*, session: Session, guardian_id: int, grant_id: int, action: str) -> ConsentGrant:
    """Pause, resume or revoke: takes effect at once, in this one transaction."""
    kind = ACTIONS.get(action)
    if kind is None:
        raise NotFound(_NOT_FOUND)
    grant = grant_of(session=session, guardian_id=guardian_id, grant_id=grant_id)
    if service.effective_status(grant) is GrantStatus.expired and grant.status is not GrantStatus.expired:
        # Past its expiry: record that, rather than pause or resume a grant that allows nothing.
        service.expire_due(session=session)
        return grant
    return service.transition(session=session, grant=grant, kind=kind, actor=guardian_actor(guardian_id))


def uses(*, session: Session, student_id: int) -> list[UseView]:
    """Who used the child's data, newest first, from the audit record every read writes."""
    views = []
    for entry in audit.uses_of_child(session=session, student_id=student_id):
        categories = [_SCOPE_WORDS[s].ja if s in _SCOPE_WORDS else s for s in entry.scopes]
        purpose_words = _PURPOSE_WORDS.get(entry.purpose or "")
        views.append(
            UseView(
                at=entry.at,
                who=ACTOR_LABELS.get(entry.actor_kind, entry.actor_kind.value),
                organisation=entry.actor_organisation,
                role=entry.actor_role,
                category="、".join(categories),
                purpose=purpose_words.ja if purpose_words else (entry.purpose or ""),
            )
        )
    return views
