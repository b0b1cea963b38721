"""Staff sign-in: argon2 passwords, a new session id, lockout, CSRF, sign-out, disabled accounts."""

from __future__ import annotations

import httpx
from sqlmodel import Session, col, select

from app.roster.models import StaffRole
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind, WebSession
from app.staff import accounts
from app.staff.models import SignInEventKind, StaffSignInEvent
from tests.staff.conftest import HTML, PASSWORD, Roster, csrf_from, make_staff, sign_in_directly


async def _form_token(client: httpx.AsyncClient) -> str:
    page = await client.get("/staff/sign-in", headers=HTML)
    assert page.status_code == 200
    return csrf_from(page.text)


async def _sign_in(client: httpx.AsyncClient, login: str, password: str, **extra: str) -> httpx.Response:
    token = await _form_token(client)
    data = {"login": login, "password": password, "csrf_token": token, **extra}
    return await client.post("/staff/sign-in", data=data, headers=HTML)


async def test_sign_in_starts_a_staff_session_and_lands_on_the_console(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_counselor)
    assert staff.password_hash is not None and staff.password_hash.startswith("$argon2id$")
    response = await _sign_in(client, staff.login, PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/"
    home = await client.get("/staff/", headers=HTML)
    assert home.status_code == 200
    assert "スクールカウンセラー" in home.text
    assert home.headers["cache-control"] == "no-store"
    rows = session.exec(select(WebSession).where(WebSession.principal_id == staff.id)).all()
    assert [row.principal_kind for row in rows] == [PrincipalKind.staff]


async def test_wrong_password_and_unknown_login_read_the_same(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_nurse)
    wrong = await _sign_in(client, staff.login, "not the password")
    unknown = await _sign_in(client, "nobody-here", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "ログインIDまたはパスワードが違います" in wrong.text
    assert "ログインIDまたはパスワードが違います" in unknown.text
    assert web_sessions.SESSION_COOKIE not in client.cookies


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_leader)
    for _ in range(5):
        assert (await _sign_in(client, staff.login, "guess guess guess")).status_code == 401
    locked = await _sign_in(client, staff.login, PASSWORD)
    assert locked.status_code == 429
    assert "しばらくサインインできません" in locked.text
    assert web_sessions.SESSION_COOKIE not in client.cookies


async def test_sign_in_without_csrf_is_refused(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_leader)
    response = await client.post(
        "/staff/sign-in", data={"login": staff.login, "password": PASSWORD}, headers=HTML
    )
    assert response.status_code == 403
    assert web_sessions.SESSION_COOKIE not in client.cookies


async def test_console_without_a_session_sends_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/staff/", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/sign-in?next=/staff/"
    client.cookies.set(web_sessions.SESSION_COOKIE, "forged-value")
    forged = await client.get("/staff/", headers=HTML)
    assert forged.status_code == 303
    api_like = await client.get("/staff/")
    assert api_like.status_code == 401


async def test_next_cannot_leave_the_console(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_leader)
    response = await _sign_in(client, staff.login, PASSWORD, next="//evil.example/staff/")
    assert response.headers["location"] == "/staff/"


async def test_sign_out_needs_csrf_and_ends_the_session(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_leader)
    await _sign_in(client, staff.login, PASSWORD)
    home = await client.get("/staff/", headers=HTML)
    assert (await client.post("/staff/sign-out", data={}, headers=HTML)).status_code == 403
    assert (await client.get("/staff/", headers=HTML)).status_code == 200
    out = await client.post("/staff/sign-out", data={"csrf_token": csrf_from(home.text)}, headers=HTML)
    assert out.status_code == 303
    assert (await client.get("/staff/", headers=HTML)).status_code == 303


async def test_disabling_an_account_signs_it_out_everywhere(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.case_worker)
    await _sign_in(client, staff.login, PASSWORD)
    assert (await client.get("/staff/", headers=HTML)).status_code == 200
    assert accounts.disable(session=session, login=staff.login) == 1
    session.commit()  # as the CLI's own transaction would
    assert (await client.get("/staff/", headers=HTML)).status_code == 303
    again = await _sign_in(client, staff.login, PASSWORD)
    assert again.status_code == 401


async def test_every_sign_in_event_is_recorded_for_administrators_without_passwords(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.school_leader)
    admin = make_staff(session, roster, StaffRole.administrator)
    await _sign_in(client, "nobody-here", "typed-a-secret-here")
    for _ in range(5):
        await _sign_in(client, staff.login, "guess guess guess")
    await _sign_in(client, staff.login, PASSWORD)  # locked out
    accounts.sign_in_throttle().storage.reset()
    await _sign_in(client, staff.login, PASSWORD)
    home = await client.get("/staff/", headers=HTML)
    await client.post("/staff/sign-out", data={"csrf_token": csrf_from(home.text)}, headers=HTML)
    accounts.disable(session=session, login=staff.login)
    session.commit()

    events = session.exec(select(StaffSignInEvent).order_by(col(StaffSignInEvent.id))).all()
    assert [e.kind for e in events] == [
        SignInEventKind.failed,
        *[SignInEventKind.failed] * 5,
        SignInEventKind.locked_out,
        SignInEventKind.signed_in,
        SignInEventKind.signed_out,
        SignInEventKind.disabled,
    ]
    assert events[0].login is None and events[0].staff_user_id is None  # an unknown login is not kept
    assert {e.login for e in events[1:]} == {staff.login}
    assert events[-1].detail == "0 session(s) ended"

    sign_in_directly(client, session, admin)
    page = await client.get("/staff/sign-ins", headers=HTML)
    assert page.status_code == 200
    assert page.text.count(staff.login) >= 9 and "ロック中の試行" in page.text
    assert "guess" not in page.text and "typed-a-secret-here" not in page.text and PASSWORD not in page.text
    client.cookies.clear()
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.case_worker))
    assert (await client.get("/staff/sign-ins", headers=HTML)).status_code == 403
