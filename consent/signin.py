"""Guardian sign-in: tsunagu as an OpenID Connect client (Authlib) of the national-ID login.

The browser carries the flow's state, nonce and PKCE verifier in a short-lived HttpOnly
cookie; the callback checks the state and the ID token (signature, issuer, audience, nonce,
expiry) before a guardian session is started with a brand-new id.
"""

from __future__ import annotations

import base64
import secrets
import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session, select

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.audit.models import Outcome
from app.core.config import get_settings
from app.core.errors import Unauthorized, UpstreamError
from app.roster.models import Guardian

with warnings.catch_warnings():
    # Authlib 1.9 nudges httpx users towards httpx2 at import; its httpx client still works, and
    # the project keeps one HTTP stack (httpx) until the whole project moves.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

FLOW_COOKIE = "tsunagu_signin"
FLOW_TTL_SECONDS = 600
SCOPE = "openid name address birthdate gender"


@dataclass(frozen=True)
class Flow:
    state: str
    nonce: str
    verifier: str
    next_path: str

    def to_cookie(self) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(self.__dict__)).decode()

    @classmethod
    def from_cookie(cls, value: str | None) -> Flow | None:
        if not value:
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(value.encode()))
            return cls(**{k: str(data[k]) for k in ("state", "nonce", "verifier", "next_path")})
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Identity:
    """The basic four attributes the national-ID login vouches for, with its stable subject."""

    subject: str
    name: str
    address: str | None
    birthdate: date | None


def redirect_uri() -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/guardian/sign-in/callback"


def _client() -> AsyncOAuth2Client:
    settings = get_settings()
    return AsyncOAuth2Client(
        client_id=settings.national_id_client_id,
        client_secret=settings.national_id_client_secret.get_secret_value(),
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
        code_challenge_method="S256",
        redirect_uri=redirect_uri(),
        scope=SCOPE,
        timeout=settings.upstream_timeout_seconds,
    )


async def _discover(client: AsyncOAuth2Client) -> dict[str, Any]:
    base = get_settings().national_id_url.rstrip("/")
    try:
        response = await client.request(
            "GET", f"{base}/.well-known/openid-configuration", withhold_token=True
        )
        response.raise_for_status()
    except Exception as exc:  # httpx transport and status errors alike: the login is down
        raise UpstreamError(
            "マイナンバーカードのログインに接続できません。しばらくしてからお試しください。"
            " / The national-ID sign-in is unreachable; please try again later.",
            retryable=True,
        ) from exc
    document: dict[str, Any] = response.json()
    return document


async def start(*, next_path: str) -> tuple[str, Flow]:
    """Where to send the browser, and the flow to remember in its cookie."""
    flow = Flow(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),
        next_path=next_path,
    )
    async with _client() as client:
        document = await _discover(client)
        url, _state = client.create_authorization_url(
            document["authorization_endpoint"],
            state=flow.state,
            code_verifier=flow.verifier,
            nonce=flow.nonce,
        )
    return str(url), flow


async def finish(*, flow: Flow | None, code: str | None, state: str | None, iss: str | None) -> Identity:
    """Check the callback and the ID token; the verified identity, or Unauthorized."""
    refused = Unauthorized(
        "サインインを確認できませんでした。もう一度お試しください。"
        " / Sign-in could not be verified; please try again."
    )
    if flow is None or not code or not state or not secrets.compare_digest(state, flow.state):
        raise refused
    async with _client() as client:
        document = await _discover(client)
        if iss is not None and iss != document["issuer"]:  # RFC 9207: a mix-up is refused
            raise refused
        try:
            token = await client.fetch_token(
                document["token_endpoint"], code=code, code_verifier=flow.verifier
            )
            keys = (await client.request("GET", document["jwks_uri"], withhold_token=True)).json()
        except Exception as exc:  # a refused code and a broken upstream both end the attempt
            raise refused from exc
    try:
        decoded = jwt.decode(token["id_token"], KeySet.import_key_set(keys), algorithms=["ES256", "RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": document["issuer"]},
            aud={"essential": True, "value": get_settings().national_id_client_id},
            nonce={"essential": True, "value": flow.nonce},
            sub={"essential": True},
            exp={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, KeyError, ValueError) as exc:
        raise refused from exc
    claims = decoded.claims
    birthdate = claims.get("birthdate")
    return Identity(
        subject=str(claims["sub"]),
        name=str(claims.get("name", "")),
        address=claims.get("address"),
        birthdate=date.fromisoformat(birthdate) if birthdate else None,
    )


def guardian_for(*, session: Session, identity: Identity) -> Guardian:
    """The guardian with this national-ID subject; a first sign-in creates them."""
    guardian = session.exec(select(Guardian).where(Guardian.subject == identity.subject)).first()
    family, _, given = identity.name.partition(" ")
    if guardian is None:
        guardian = Guardian(
            subject=identity.subject,
            family_name=family[:32] or "（未設定）",
            given_name=given[:32],
            family_name_kana="",
            given_name_kana="",
            birth_date=identity.birthdate,
            address=identity.address,
        )
    else:
        guardian.address = identity.address or guardian.address
    session.add(guardian)
    session.flush()
    assert guardian.id is not None
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=Actor(kind=ActorKind.guardian, ref=f"guardian:{guardian.id}", organisation="家庭 / family"),
            action="guardian.signed_in",
            outcome=Outcome.done,
        ),
    )
    return guardian
