"""Staff pages for universal notices: compose, preview, schedule, cancel, and watch them go out."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from app.core.config import Mode, Settings
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Conflict, UpstreamError
from app.core.types import utcnow
from app.roster.models import School
from app.sessions import service as web_sessions
from notify import campaigns, outbox, resources
from notify.deps import NoticeStaff
from notify.line import Line, Outcome
from notify.web import render

router = APIRouter(prefix="/staff/notices", include_in_schema=False)


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: str(form.get(name, "")).strip()
        for name in ("title", "body_ja", "body_en", "contact_ja", "contact_en", "scheduled_for")
    }
    values["resource_ids"] = [
        int(v) for v in form.getlist("resource_ids") if isinstance(v, str) and v.isdigit()
    ]
    for name in ("school_id", "grade"):
        chosen = form.get(name)
        values[name] = int(chosen) if isinstance(chosen, str) and chosen.isdigit() else None
    return values


def _compose_page(
    request: Request,
    session: Session,
    settings: Settings,
    current: NoticeStaff,
    values: dict[str, Any],
    errors: list[str],
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "notify/notice_form.html",
        {
            "current": current,
            "values": values,
            "errors": errors,
            "schools": session.exec(select(School).order_by(col(School.name))).all(),
            "resources": resources.search(session=session),
            "KINDS": resources.KIND_WORDING,
            "quiet": (settings.notify_quiet_start_hour, settings.notify_quiet_end_hour),
        },
        status_code=status_code,
    )


@router.get("", response_class=HTMLResponse)
def notices(
    request: Request, session: SessionDep, settings: SettingsDep, current: NoticeStaff
) -> HTMLResponse:
    """Every notice with how many are queued, sent, failed, cancelled or skipped."""
    counts = outbox.counts_by_campaign(session=session)
    return render(
        request,
        "notify/notices.html",
        {
            "current": current,
            "rows": campaigns.overview(session=session),
            "personal": counts.get(None, outbox.Counts()),
            "zone": ZoneInfo(settings.timezone),
            "schools": {s.id: s.name for s in session.exec(select(School)).all()},
        },
    )


@router.get("/new", response_class=HTMLResponse)
def new_notice(
    request: Request, session: SessionDep, settings: SettingsDep, current: NoticeStaff
) -> HTMLResponse:
    soon = (utcnow() + timedelta(minutes=10)).astimezone(ZoneInfo(settings.timezone))
    values = {
        "contact_ja": settings.notify_contact_ja,
        "contact_en": settings.notify_contact_en,
        "scheduled_for": soon.strftime("%Y-%m-%dT%H:%M"),
        "resource_ids": [],
    }
    return _compose_page(request, session, settings, current, values, [])


@router.post("")
async def create_notice(
    request: Request, session: SessionDep, settings: SettingsDep, current: NoticeStaff
) -> Response:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    values = _form_values(await request.form())
    try:
        data = campaigns.CampaignIn.model_validate(values)
        campaign = campaigns.create(session=session, settings=settings, data=data, staff_id=current.staff.id)
    except ValidationError as error:
        messages = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        return _compose_page(request, session, settings, current, values, messages, status_code=422)
    except campaigns.NoticeRefused as refused:
        return _compose_page(request, session, settings, current, values, [refused.message], status_code=422)
    return RedirectResponse(f"/staff/notices/{campaign.id}", status_code=303)


@router.get("/{campaign_id}", response_class=HTMLResponse)
def notice(
    request: Request, session: SessionDep, settings: SettingsDep, current: NoticeStaff, campaign_id: int
) -> HTMLResponse:
    """The notice as LINE will show it, who will get it, and how far it has gone."""
    campaign = campaigns.get(session=session, campaign_id=campaign_id)
    counts = outbox.counts_by_campaign(session=session).get(campaign.id, outbox.Counts())
    zone = ZoneInfo(settings.timezone)
    due = outbox.outside_quiet_hours(max(outbox.aware(campaign.scheduled_for), utcnow()), settings)
    return render(
        request,
        "notify/notice.html",
        {
            "current": current,
            "c": campaign,
            "counts": counts,
            "audience": len(campaigns.audience(session=session, campaign=campaign)),
            "school": session.get(School, campaign.school_id) if campaign.school_id else None,
            "zone": zone,
            "due": due.astimezone(zone),
            "test_recipient": settings.notify_test_recipient,
            "simulator": f"{settings.line_access_url.rstrip('/')}/phone/{settings.notify_test_recipient}"
            if settings.mode is Mode.demo
            else None,
            "tested": request.query_params.get("tested") == "1",
        },
    )


@router.post("/{campaign_id}/test")
async def test_send_notice(
    request: Request, session: SessionDep, settings: SettingsDep, current: NoticeStaff, campaign_id: int
) -> Response:
    """Send the notice to the municipality's own test phone, to see it as a family will.

    Nothing goes to the outbox: the test phone is not a family, and a retry would only show
    the staff member the same notice twice.
    """
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    campaign = campaigns.get(session=session, campaign_id=campaign_id)
    if settings.notify_test_recipient is None:
        raise Conflict(
            "試し送り先のテスト端末が設定されていません（TSUNAGU_NOTIFY_TEST_RECIPIENT）。 / "
            "No test phone is set up (TSUNAGU_NOTIFY_TEST_RECIPIENT)."
        )
    async with Line(settings) as line:
        result = await line.push(
            to=settings.notify_test_recipient, messages=campaign.messages, retry_key=str(uuid.uuid4())
        )
    if result.outcome is not Outcome.sent:
        raise UpstreamError(
            f"LINE がテスト端末への送信を受け付けませんでした（{result.status}）。"
            "時間をおいてお試しください。 / "
            f"LINE did not accept the test send ({result.status}); please try again later.",
            retryable=result.outcome in (Outcome.retry, Outcome.rate_limited),
        )
    return RedirectResponse(f"/staff/notices/{campaign_id}?tested=1", status_code=303)


@router.post("/{campaign_id}/schedule")
async def schedule_notice(
    request: Request, session: SessionDep, settings: SettingsDep, current: NoticeStaff, campaign_id: int
) -> Response:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    campaigns.schedule(session=session, settings=settings, campaign_id=campaign_id)
    return RedirectResponse(f"/staff/notices/{campaign_id}", status_code=303)


@router.post("/{campaign_id}/cancel")
async def cancel_notice(
    request: Request, session: SessionDep, current: NoticeStaff, campaign_id: int
) -> Response:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    campaigns.cancel(session=session, campaign_id=campaign_id)
    return RedirectResponse(f"/staff/notices/{campaign_id}", status_code=303)
