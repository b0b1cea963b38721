"""Invitation codes: random, hashed, single use, expiring, reissue voids, attempts limited;
the guardian confirms the child before anything is linked; letters print as A4 PDF."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.db import get_engine
from app.core.types import utcnow
from app.roster.models import GuardianLink, Homeroom
from consent import invitations
from consent.letters import render_letters
from consent.models import InvitationCode
from tests.consent.oauth_flow import sign_in_family
from tests.factories import make_school, make_student


def test_codes_carry_80_random_bits_and_only_their_hash_is_stored(session: Session) -> None:
    student = make_student(session)
    assert student.id is not None
    row, code = invitations.issue(session=session, student_id=student.id)
    assert len(code) == 16 and set(code) <= set(invitations.ALPHABET) and len(invitations.ALPHABET) == 32
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert invitations.normalise(invitations.display(code).lower()) == code


def test_reissue_voids_the_old_code(session: Session) -> None:
    student = make_student(session)
    assert student.id is not None
    old, _ = invitations.issue(session=session, student_id=student.id)
    new, _ = invitations.issue(session=session, student_id=student.id)
    session.refresh(old)
    assert old.voided_at is not None and new.voided_at is None


async def test_guardian_confirms_the_child_then_the_code_is_used_up(
    session: Session, https: httpx.AsyncClient
) -> None:
    family = sign_in_family(session, https)
    child = make_student(
        session, given_name="陽菜", birth_date=utcnow().date().replace(year=2013, month=6, day=9)
    )
    assert child.id is not None
    _, code = invitations.issue(session=session, student_id=child.id)
    form = await https.get("/guardian/link", params={"code": code})
    assert code in form.text
    confirm = await https.post(
        "/guardian/link", data={"code": invitations.display(code), "csrf_token": family.csrf_token}
    )
    assert confirm.status_code == 200 and "陽菜" in confirm.text and "2013年6月9日" in confirm.text
    assert session.exec(select(GuardianLink).where(GuardianLink.student_id == child.id)).first() is None
    done = await https.post("/guardian/link/confirm", data={"code": code, "csrf_token": family.csrf_token})
    assert done.status_code == 303 and done.headers["location"] == f"/guardian/children/{child.id}"
    link = session.exec(select(GuardianLink).where(GuardianLink.student_id == child.id)).one()
    assert link.guardian_id == family.guardian_id and link.verified_at is not None
    again = await https.post("/guardian/link/confirm", data={"code": code, "csrf_token": family.csrf_token})
    assert again.status_code == 400 and "この招待コードは使えません" in again.text


@pytest.mark.parametrize("state", ["wrong", "expired", "voided"])
async def test_unusable_codes_get_a_clear_page_and_change_nothing(
    session: Session, https: httpx.AsyncClient, state: str
) -> None:
    family = sign_in_family(session, https)
    child = make_student(session)
    assert child.id is not None
    row, code = invitations.issue(session=session, student_id=child.id)
    if state == "wrong":
        code = code[:-1] + ("0" if code[-1] != "0" else "1")
    elif state == "expired":
        row.expires_at = utcnow() - timedelta(minutes=1)
    else:
        invitations.issue(session=session, student_id=child.id)
    session.add(row)
    session.flush()
    response = await https.post(
        "/guardian/link/confirm", data={"code": code, "csrf_token": family.csrf_token}
    )
    assert response.status_code == 400 and "学校にお問い合わせください" in response.text
    assert session.exec(select(GuardianLink).where(GuardianLink.student_id == child.id)).first() is None


async def test_attempts_are_limited_per_guardian(session: Session, https: httpx.AsyncClient) -> None:
    family = sign_in_family(session, https)
    statuses = [
        (
            await https.post(
                "/guardian/link", data={"code": f"WRONG{n:011d}", "csrf_token": family.csrf_token}
            )
        ).status_code
        for n in range(11)
    ]
    assert statuses[:10] == [400] * 10 and statuses[10] == 429


async def test_link_form_posts_need_csrf(session: Session, https: httpx.AsyncClient) -> None:
    sign_in_family(session, https)
    assert (await https.post("/guardian/link", data={"code": "X"})).status_code == 403


def test_letters_are_an_a4_pdf_page_per_child(session: Session, tmp_path: Path, settings_env: None) -> None:
    school = make_school(session)
    assert school.id is not None
    homeroom = Homeroom(school_id=school.id, school_year=2026, grade=7, name="1年2組")
    session.add(homeroom)
    session.flush()
    for name in ("一郎", "二郎"):
        make_student(session, school=school, homeroom_id=homeroom.id, given_name=name)
    found = invitations.find_homeroom(session=session, school_code=school.code, homeroom_name="1年2組")
    letters = invitations.issue_for_homeroom(session=session, school=found[0], homeroom=found[1])
    pdf = render_letters(letters)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", pdf)) == 2
    assert re.search(rb"/MediaBox \[0 0 595\.28 841\.89\]", pdf)  # A4 in points
    assert b"NotoSansCJK" in pdf  # the Japanese font is embedded
    assert len(session.exec(select(InvitationCode).where(InvitationCode.voided_at.is_(None))).all()) >= 2  # type: ignore[union-attr]


def test_cli_refuses_an_unknown_school(tmp_path: Path, settings_env: None) -> None:
    out = tmp_path / "letters.pdf"
    try:
        result = CliRunner().invoke(
            cli, ["invitations", "print", "--school", "NOPE", "--homeroom", "1年1組", "--out", str(out)]
        )
    finally:
        get_engine().dispose()  # the CLI's own engine: close its pooled connection now
    assert result.exit_code != 0 and "no school with code 'NOPE'" in str(result.exception)
    assert not out.exists()
