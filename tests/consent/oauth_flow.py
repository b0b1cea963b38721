"""Drive the authorization server as a partner client and a guardian's browser would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlmodel import Session

from app.sessions.models import PrincipalKind, WebSession
from consent import clients
from consent.models import Client
from consent.scopes import Purpose, Scope
from tests.factories import make_guardian, make_student

REDIRECT_URI = "https://partner.example/callback"


@dataclass
class Partner:
    client: Client
    secret: str

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client.client_id, self.secret)


@dataclass
class Family:
    guardian_id: int
    student_id: int
    csrf_token: str


def register_partner(session: Session, *, require_par: bool = False) -> Partner:
    client, secret = clients.add_client(
        session=session,
        client_id=f"partner-{secrets.token_hex(4)}",
        name="こども食堂ネットワーク",
        organisation="NPO法人こども食堂ネットワーク加賀",
        redirect_uris=[REDIRECT_URI],
        scopes=list(Scope),
        purposes=list(Purpose),
        require_par=require_par,
    )
    return Partner(client, secret)


def sign_in_family(session: Session, http: httpx.AsyncClient) -> Family:
    """A guardian linked to a child, with a live browser session in `http`'s cookie jar."""
    student = make_student(session)
    guardian = make_guardian(session, student=student)
    assert guardian.id is not None and student.id is not None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            principal_kind=PrincipalKind.guardian,
            principal_id=guardian.id,
            csrf_token=csrf,
        )
    )
    # Committed (a savepoint under the test's transaction) so that a request that fails and
    # rolls back does not take the family's sign-in with it.
    session.commit()
    http.cookies.set("tsunagu_session", token)
    return Family(guardian.id, student.id, csrf)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(partner: Partner, challenge: str | None, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": partner.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "school.attendance school.mood purpose:early_support purpose:support_info",
        "state": "xyz-state",
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return params | overrides


def consent_handle(page: httpx.Response) -> str:
    match = re.search(r'name="handle" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def query_of(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def approve(
    http: httpx.AsyncClient,
    family: Family,
    page: httpx.Response,
    *,
    scopes: tuple[str, ...] = ("school.attendance",),
    purposes: tuple[str, ...] = ("early_support",),
) -> httpx.Response:
    form: dict[str, str | list[str]] = {
        "csrf_token": family.csrf_token,
        "handle": consent_handle(page),
        "child_id": str(family.student_id),
        "decision": "allow",
        "scope": list(scopes),
        "purpose": list(purposes),
    }
    return await http.post("/oauth/authorize", data=form)


async def obtain_code(
    http: httpx.AsyncClient, partner: Partner, family: Family, **choice: tuple[str, ...]
) -> tuple[str, str]:
    """Run the browser part of the flow; returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    page = await http.get("/oauth/authorize", params=authorize_params(partner, challenge))
    assert page.status_code == 200, page.text
    decided = await approve(http, family, page, **choice)
    assert decided.status_code == 302, decided.text
    return query_of(decided)["code"], verifier


async def exchange(
    http: httpx.AsyncClient, partner: Partner, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI} | extra
    if verifier is not None:
        data["code_verifier"] = verifier
    return await http.post("/oauth/token", data=data, auth=partner.auth)


async def introspect(http: httpx.AsyncClient, partner: Partner, token: str) -> dict[str, object]:
    response = await http.post("/oauth/introspect", data={"token": token}, auth=partner.auth)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
