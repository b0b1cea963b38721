"""The guardian's dashboard: the city's consent page, signed receipts, pause / resume / revoke
with deletion of what was obtained, and "who used my child's data"."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import httpx
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.audit.actors import Actor, ActorKind
from app.cli import cli
from app.sources.models import AttendanceDay, AttendanceMark, MoodCheckin, Source, Weather
from consent import keys, policy, receipts
from consent.models import ConsentGrant, ConsentReceipt, GrantStatus
from consent.scopes import Purpose, Scope
from tests.consent.oauth_flow import Family, sign_in_family
from tests.factories import make_student

STAFF = Actor(kind=ActorKind.staff, ref="staff:t.tanaka", organisation="第一中学校", role="担任")


async def _agree(https: httpx.AsyncClient, family: Family, scopes: list[str], purposes: list[str]) -> int:
    form = {"csrf_token": family.csrf_token, "decision": "allow", "scope": scopes, "purpose": purposes}
    response = await https.post(f"/guardian/children/{family.student_id}/consent", data=form)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


async def test_city_consent_records_exactly_the_two_ticked_toggles(
    session: Session, https: httpx.AsyncClient
) -> None:
    family = sign_in_family(session, https)
    page = await https.get(f"/guardian/children/{family.student_id}/consent")
    boxes = re.findall(r'<input type="checkbox"[^>]*>', page.text)
    assert len(boxes) == len(Scope) + len(Purpose) and not any("checked" in b for b in boxes)
    assert page.text.index("受け取る者") < page.text.index('type="checkbox"')  # the notice comes first
    made = await _agree(https, family, ["school.attendance"], ["early_support"])
    grant = session.get(ConsentGrant, made)
    assert grant is not None
    assert (grant.scopes, grant.purposes, grant.client_id) == (["school.attendance"], ["early_support"], None)
    assert grant.status is GrantStatus.active and len(grant.notice_hash) == 64


async def test_receipt_is_shown_downloadable_and_verifiable_offline_across_key_rotation(
    session: Session, https: httpx.AsyncClient, tmp_path: Path, settings_env: None
) -> None:
    family = sign_in_family(session, https)
    made = await _agree(https, family, ["school.mood"], ["support_info"])
    page = await https.get(f"/guardian/grants/{made}")
    assert page.status_code == 200 and "心の天気" in page.text
    download = await https.get(f"/guardian/grants/{made}/receipt.jws")
    assert "attachment" in download.headers["content-disposition"]
    receipt_file = tmp_path / "receipt.jws"
    receipt_file.write_text(download.text)
    keys.rotate(session=session)  # a new signing key; the old receipt must still verify
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text((await https.get("/.well-known/jwks.json")).text)
    assert len(json.loads(jwks_file.read_text())["keys"]) >= 2
    runner = CliRunner()
    verified = runner.invoke(cli, ["receipt", "verify", str(receipt_file), "--jwks", str(jwks_file)])
    assert verified.exit_code == 0, verified.output
    assert '"school.mood"' in verified.output and "signature valid" in verified.output
    header, payload, signature = download.text.split(".")
    forged = f"{header}.{payload[:-4]}AAAA.{signature}"
    (tmp_path / "forged.jws").write_text(forged)
    refused = runner.invoke(
        cli, ["receipt", "verify", str(tmp_path / "forged.jws"), "--jwks", str(jwks_file)]
    )
    assert refused.exit_code == 1 and "signature invalid" in refused.output


def test_receipt_terms_match_the_grant(session: Session) -> None:
    from tests.factories import make_grant

    grant = make_grant(session, scopes=[Scope.school_grades], purposes=[Purpose.early_support])
    receipt = session.get(ConsentReceipt, grant.id)  # every grant is issued its receipt
    assert receipt is not None
    terms = receipts.verify(receipt.jws, jwks=keys.jwks(session=session))
    assert (terms["grant_id"], terms["scopes"], terms["purposes"]) == (
        grant.id,
        ["school.grades"],
        ["early_support"],
    )
    assert "family_name" not in json.dumps(terms)  # no names in a file that travels


async def test_revoke_deletes_what_was_obtained_and_shows_the_deletion(
    session: Session, https: httpx.AsyncClient
) -> None:
    family = sign_in_family(session, https)
    made = await _agree(https, family, ["school.attendance", "school.mood"], ["early_support"])
    for day in (date(2026, 10, 1), date(2026, 10, 2)):
        session.add(
            AttendanceDay(
                student_id=family.student_id,
                day=day,
                mark=AttendanceMark.absent,
                source=Source.demo_loader,
                grant_id=made,
            )
        )
    session.add(
        MoodCheckin(
            student_id=family.student_id,
            day=date(2026, 10, 1),
            weather=Weather.rain,
            source=Source.demo_loader,
            grant_id=made,
        )
    )
    session.flush()
    assert policy.authorize(
        session=session,
        actor=STAFF,
        student_id=family.student_id,
        scope=Scope.school_attendance,
        purpose=Purpose.early_support,
    ).allowed
    revoked = await https.post(
        f"/guardian/grants/{made}/action", data={"action": "revoke", "csrf_token": family.csrf_token}
    )
    assert revoked.status_code == 303
    assert session.exec(select(AttendanceDay).where(AttendanceDay.grant_id == made)).first() is None
    assert session.exec(select(MoodCheckin).where(MoodCheckin.grant_id == made)).first() is None
    decision = policy.authorize(
        session=session,
        actor=STAFF,
        student_id=family.student_id,
        scope=Scope.school_attendance,
        purpose=Purpose.early_support,
    )
    assert decision.reason == "grant_revoked"
    child_page = await https.get(f"/guardian/children/{family.student_id}")
    assert (
        "取り消し済み" in child_page.text
        and "attendance_day: 2" in child_page.text
        and "mood_checkin: 1" in child_page.text
    )


async def test_pause_and_resume_from_the_dashboard(session: Session, https: httpx.AsyncClient) -> None:
    family = sign_in_family(session, https)
    made = await _agree(https, family, ["school.attendance"], ["early_support"])

    async def press(action: str) -> None:
        response = await https.post(
            f"/guardian/grants/{made}/action", data={"action": action, "csrf_token": family.csrf_token}
        )
        assert response.status_code == 303

    def allowed() -> bool:
        return policy.check(
            session=session,
            student_id=family.student_id,
            scope=Scope.school_attendance,
            purpose=Purpose.early_support,
        ).allowed

    await press("pause")
    assert not allowed()
    await press("resume")
    assert allowed()
    assert (await https.post(f"/guardian/grants/{made}/action", data={"action": "pause"})).status_code == 403


async def test_who_used_my_childs_data_lists_every_use(session: Session, https: httpx.AsyncClient) -> None:
    family = sign_in_family(session, https)
    await _agree(https, family, ["school.attendance"], ["early_support"])
    policy.authorize(
        session=session,
        actor=STAFF,
        student_id=family.student_id,
        scope=Scope.school_attendance,
        purpose=Purpose.early_support,
    )
    page = await https.get(f"/guardian/children/{family.student_id}/uses")
    assert page.status_code == 200
    assert (
        "第一中学校" in page.text
        and "担任" in page.text
        and "出欠の記録" in page.text
        and "早期発見" in page.text
    )


async def test_another_familys_child_and_grant_are_not_found(
    session: Session, https: httpx.AsyncClient
) -> None:
    from tests.factories import make_grant

    sign_in_family(session, https)
    stranger = make_student(session)
    grant = make_grant(session, student=stranger)
    session.commit()
    for path in (
        f"/guardian/children/{stranger.id}",
        f"/guardian/children/{stranger.id}/uses",
        f"/guardian/grants/{grant.id}",
    ):
        assert (await https.get(path)).status_code == 404
    csrf = (await https.get("/guardian/")).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', csrf)
    assert token is not None
    response = await https.post(
        f"/guardian/grants/{grant.id}/action", data={"action": "revoke", "csrf_token": token.group(1)}
    )
    assert response.status_code == 404
    session.refresh(grant)
    assert grant.status is GrantStatus.active
