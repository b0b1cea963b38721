"""Universal notices: staff compose one, choose who gets it (everyone, a school, a grade), schedule it.

Scheduling is the decision to send, so it writes the outbox rows in the same transaction.
The audience is drawn from the roster only: who follows the account and wants notices, and
for a school or grade, whose linked child is there. Nothing about alerts, screening or
benefits can enter the choice (there is no parameter for it), and every notice names whom to
ask. Texts are checked against LINE's limits before anything is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.errors import AppError, Conflict, NotFound
from app.core.types import utcnow
from app.roster.models import GuardianLink, School, Student
from notify import messages, outbox, resources
from notify.models import Campaign, CampaignStatus, LineAccount, SupportResource

Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class NoticeRefused(AppError):
    status_code = 422
    code = "invalid_notice"


class CampaignIn(BaseModel):
    """A notice as staff compose it. There is no field to aim it at an alert or a risk."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Text, StringConstraints(min_length=1, max_length=100)]
    body_ja: Annotated[Text, StringConstraints(min_length=1, max_length=5000)]
    body_en: Annotated[Text, StringConstraints(max_length=5000)] = ""
    contact_ja: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    contact_en: Annotated[Text, StringConstraints(max_length=200)] = ""
    resource_ids: list[int] = Field(default_factory=list, max_length=messages.MAX_BUBBLES - 1)
    school_id: int | None = None
    grade: int | None = Field(default=None, ge=1, le=9)
    scheduled_for: datetime


def notice_text(data: CampaignIn) -> str:
    parts = [f"【お知らせ】{data.title}", data.body_ja]
    if data.body_en:
        parts.append(data.body_en)
    parts.append(
        f"お問い合わせ: {data.contact_ja}" + (f"\nContact: {data.contact_en}" if data.contact_en else "")
    )
    return "\n\n".join(parts)


def compose(*, session: Session, settings: Settings, data: CampaignIn) -> list[dict[str, Any]]:
    """The LINE messages of a notice, or NoticeRefused saying which limit it breaks."""
    text = notice_text(data)
    if len(text) > messages.MAX_TEXT:
        raise NoticeRefused(
            f"本文が LINE の上限を超えています（{len(text):,} 文字、上限 {messages.MAX_TEXT:,} 文字。"
            "題名・問い合わせ先を含みます）。"
            f" / The notice is {len(text):,} characters; LINE allows {messages.MAX_TEXT:,}."
        )
    composed = [messages.text(text)]
    if data.resource_ids:
        chosen = list(
            session.exec(
                select(SupportResource).where(
                    col(SupportResource.id).in_(data.resource_ids), col(SupportResource.published)
                )
            ).all()
        )
        missing = sorted(set(data.resource_ids) - {r.id for r in chosen})
        if missing:
            raise NoticeRefused(
                f"公開されていない相談先があります: {missing} / unpublished or unknown resources"
            )
        chosen.sort(key=lambda r: data.resource_ids.index(r.id or 0))
        composed.append(resources.carousel(session=session, settings=settings, chosen=chosen))
    return composed


def _check_audience(session: Session, data: CampaignIn) -> None:
    if data.school_id is not None and session.get(School, data.school_id) is None:
        raise NoticeRefused("学校が見つかりません / no such school")


def as_utc(moment: datetime, settings: Settings) -> datetime:
    """A time typed into a form (no zone) is the municipality's local time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment.astimezone(UTC)


def create(*, session: Session, settings: Settings, data: CampaignIn, staff_id: int | None) -> Campaign:
    _check_audience(session, data)
    composed = compose(session=session, settings=settings, data=data)
    campaign = Campaign(
        **data.model_dump(exclude={"scheduled_for"}),
        scheduled_for=as_utc(data.scheduled_for, settings),
        created_by=staff_id,
        messages=composed,
    )
    session.add(campaign)
    session.flush()
    return campaign


def get(*, session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("お知らせが見つかりません。 / No such notice.")
    return campaign


def audience(*, session: Session, campaign: Campaign) -> list[int]:
    """The accounts a notice goes to: following, wanting notices, and (for a school or grade)
    linked to a guardian of, or to, a child enrolled there."""
    reachable = sa.and_(
        col(LineAccount.following),
        col(LineAccount.notices_enabled),
        col(LineAccount.line_user_id).is_not(None),
    )
    if campaign.school_id is None and campaign.grade is None:
        return list(session.exec(select(LineAccount.id).where(reachable)).all())  # type: ignore[arg-type]
    enrolled: list[sa.ColumnElement[bool]] = [col(Student.left_on).is_(None)]
    if campaign.school_id is not None:
        enrolled.append(col(Student.school_id) == campaign.school_id)
    if campaign.grade is not None:
        enrolled.append(col(Student.grade) == campaign.grade)
    children = select(Student.id).where(*enrolled)
    guardians = select(GuardianLink.guardian_id).where(col(GuardianLink.student_id).in_(children))
    query = select(LineAccount.id).where(
        reachable,
        sa.or_(col(LineAccount.guardian_id).in_(guardians), col(LineAccount.student_id).in_(children)),
    )
    return list(session.exec(query).all())  # type: ignore[arg-type]


def schedule(*, session: Session, settings: Settings, campaign_id: int) -> outbox.Queued:
    """The decision to send: queue the notice for its audience now, due at its time."""
    campaign = get(session=session, campaign_id=campaign_id)
    if campaign.status is not CampaignStatus.draft:
        raise Conflict("このお知らせはすでに予約済みか取り消し済みです。 / Already scheduled or cancelled.")
    assert campaign.id is not None
    targeted = campaign.school_id is not None or campaign.grade is not None
    queued = outbox.enqueue(
        session=session,
        settings=settings,
        account_ids=audience(session=session, campaign=campaign),
        messages=campaign.messages,
        due=max(as_utc(campaign.scheduled_for, settings), utcnow()),
        campaign_id=campaign.id,
        needs_link=targeted,
    )
    campaign.status, campaign.scheduled_at = CampaignStatus.scheduled, utcnow()
    session.add(campaign)
    session.flush()
    return queued


def cancel(*, session: Session, campaign_id: int) -> int:
    """Stop a notice: whatever has not gone out yet will not."""
    campaign = get(session=session, campaign_id=campaign_id)
    campaign.status = CampaignStatus.cancelled
    session.add(campaign)
    session.flush()
    return outbox.cancel_for_campaign(session=session, campaign_id=campaign_id)


def overview(*, session: Session, limit: int = 100) -> list[tuple[Campaign, outbox.Counts]]:
    counts = outbox.counts_by_campaign(session=session)
    campaigns = session.exec(select(Campaign).order_by(col(Campaign.id).desc()).limit(limit)).all()
    return [(c, counts.get(c.id, outbox.Counts())) for c in campaigns]
