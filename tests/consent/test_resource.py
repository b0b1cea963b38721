"""The partner resource API: bearer JWT, 403 naming what is missing, 404 for another child,
401 for forged, expired or revoked tokens; every read recorded for the family."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
from jose import jwt
from sqlmodel import Session, select

from app.audit import service as audit
from app.core.types import utcnow
from app.sources.models import AttendanceDay, AttendanceMark, AttendanceReason, Source
from consent import service
from consent.models import ConsentGrant, GrantEventKind, OAuthToken
from tests.consent.oauth_flow import Family, Partner, exchange, obtain_code, register_partner, sign_in_family
from tests.factories import GUARDIAN_ACTOR, make_student


async def _setup(session: Session, https: httpx.AsyncClient) -> tuple[Partner, Family, str]:
    partner, family = register_partner(session), sign_in_family(session, https)
    session.add(
        AttendanceDay(
            student_id=family.student_id,
            day=date(2026, 10, 5),
            mark=AttendanceMark.absent,
            reason=AttendanceReason.illness,
            source=Source.demo_loader,
        )
    )
    session.commit()
    code, verifier = await obtain_code(
        https, partner, family, scopes=("school.attendance",), purposes=("early_support",)
    )
    token = (await exchange(https, partner, code, verifier)).json()["access_token"]
    return partner, family, token


async def _get(
    https: httpx.AsyncClient, child_id: int, category: str, token: str | None, **params: str
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await https.get(f"/api/v1/children/{child_id}/{category}", headers=headers, params=params)


async def test_reads_records_and_the_read_is_listed_for_the_family(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family, token = await _setup(session, https)
    response = await _get(https, family.student_id, "school.attendance", token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["purpose"] == "early_support"
    assert body["records"] == [
        {
            "kind": "attendance_day",
            "day": "2026-10-05",
            "mark": "absent",
            "reason": "illness",
            "source": "demo_loader",
            "fetched_at": body["records"][0]["fetched_at"],
        }
    ]
    [use] = audit.uses_of_child(session=session, student_id=family.student_id)
    assert (use.actor_kind, use.actor_ref, use.actor_organisation) == (
        "partner_client",
        partner.client_id,
        partner.client.organisation,
    )


async def test_missing_scope_or_purpose_is_named_in_a_403(session: Session, https: httpx.AsyncClient) -> None:
    _partner, family, token = await _setup(session, https)
    no_scope = await _get(https, family.student_id, "school.mood", token)
    assert no_scope.status_code == 403 and "school.mood" in no_scope.json()["detail"]
    no_purpose = await _get(https, family.student_id, "school.attendance", token, purpose="support_info")
    assert no_purpose.status_code == 403 and "support_info" in no_purpose.json()["detail"]


async def test_another_child_is_not_found(session: Session, https: httpx.AsyncClient) -> None:
    _partner, _family, token = await _setup(session, https)
    stranger = make_student(session)
    assert stranger.id is not None
    assert (await _get(https, stranger.id, "school.attendance", token)).status_code == 404


async def test_missing_forged_expired_and_revoked_tokens_are_401(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family, token = await _setup(session, https)
    assert (await _get(https, family.student_id, "school.attendance", None)).status_code == 401
    header, _payload, signature = token.split(".")
    claims = jwt.get_unverified_claims(token) | {
        "scope": "school.attendance school.mood purpose:early_support"
    }
    forged_payload = jwt.encode(claims, "not-our-key", algorithm="HS256").split(".")[1]
    assert (
        await _get(https, family.student_id, "school.attendance", f"{header}.{forged_payload}.{signature}")
    ).status_code == 401
    row = session.exec(select(OAuthToken).where(OAuthToken.access_jti == claims["jti"])).one()
    row.access_expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)
    session.commit()
    assert (await _get(https, family.student_id, "school.attendance", token)).status_code == 401
    row.access_expires_at = utcnow() + timedelta(minutes=5)
    session.add(row)
    session.commit()
    await https.post("/oauth/revoke", data={"token": token}, auth=partner.auth)
    assert (await _get(https, family.student_id, "school.attendance", token)).status_code == 401


async def test_paused_grant_is_403_and_revoked_grant_is_401(
    session: Session, https: httpx.AsyncClient
) -> None:
    _partner, family, token = await _setup(session, https)
    grant = session.get(ConsentGrant, jwt.get_unverified_claims(token)["grant_id"])
    assert grant is not None
    service.transition(session=session, grant=grant, kind=GrantEventKind.paused, actor=GUARDIAN_ACTOR)
    paused = await _get(https, family.student_id, "school.attendance", token)
    assert paused.status_code == 403 and "grant_paused" in paused.json()["detail"]
    service.transition(session=session, grant=grant, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR)
    assert (await _get(https, family.student_id, "school.attendance", token)).status_code == 401
