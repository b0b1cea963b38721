"""The resource API for partner clients: a child's records of one category, under a grant.

Every call is authorised by `consent.policy.authorize`, so it is recorded as a use of the
child's data and appears on the family's "who used my child's data" page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from app.audit.actors import Actor, ActorKind
from app.core.errors import AppError, Forbidden, NotFound
from app.core.types import utcnow
from app.sources.reading import CATEGORY_TABLES, records_for
from consent import keys, policy
from consent.models import Client, ConsentGrant, OAuthToken
from consent.oauth import ACCESS_TOKEN_TYP, aware, issuer, resource_audience, split_scope
from consent.scopes import Purpose, Scope


class InvalidToken(AppError):
    """A forged, expired or revoked bearer token: 401 with the RFC 6750 challenge."""

    status_code = 401
    code = "invalid_token"


@dataclass(frozen=True)
class Caller:
    client: Client
    token: OAuthToken
    scopes: list[Scope]
    purposes: list[Purpose]


def authenticate(*, session: Session, authorization: str | None) -> Caller:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("a bearer access token is required")
    try:
        claims = keys.verify_jwt(
            token.strip(),
            keys=keys.jwks(session=session),
            typ=ACCESS_TOKEN_TYP,
            issuer=issuer(),
            audience=resource_audience(),
        )
    except keys.SignatureInvalid as exc:
        raise InvalidToken("the access token is invalid or expired") from exc
    row = session.exec(select(OAuthToken).where(OAuthToken.access_jti == claims.get("jti"))).first()
    client = session.get(Client, row.client_id) if row else None
    if (
        row is None
        or client is None
        or not client.is_active
        or row.revoked_at is not None
        or aware(row.access_expires_at) <= utcnow()
    ):
        raise InvalidToken("the access token was revoked")
    scopes, purposes = split_scope(row.scope)
    return Caller(client=client, token=row, scopes=scopes, purposes=purposes)


def read(
    *, session: Session, caller: Caller, child_id: int, category: str, purpose: str | None
) -> dict[str, Any]:
    """The records, or 404 (not this client's child), or 403 naming the missing scope or purpose."""
    grant = session.get(ConsentGrant, caller.token.grant_id)
    if grant is None or grant.student_id != child_id or category not in CATEGORY_TABLES:
        raise NotFound("no grant for this child and category")
    scope = Scope(category)
    if scope not in caller.scopes:
        raise Forbidden(f"insufficient_scope: the token does not carry scope {scope.value}")
    chosen = _purpose(caller, purpose)
    actor = Actor(
        kind=ActorKind.partner_client,
        ref=caller.client.client_id,
        organisation=caller.client.organisation,
        role=caller.client.name,
    )
    decision = policy.authorize(
        session=session, actor=actor, student_id=child_id, scope=scope, purpose=chosen
    )
    if not decision.allowed:
        raise Forbidden(f"{decision.reason}: {scope.value} for {chosen.value} is not allowed now")
    return {
        "child_id": child_id,
        "category": scope.value,
        "purpose": chosen.value,
        "grant_id": decision.grant_id,
        "records": records_for(session=session, student_id=child_id, category=scope.value),
    }


def _purpose(caller: Caller, requested: str | None) -> Purpose:
    if requested is None:
        if len(caller.purposes) == 1:
            return caller.purposes[0]
        raise Forbidden("insufficient_scope: name the purpose (?purpose=…) the data is used for")
    if requested not in Purpose._value2member_map_ or Purpose(requested) not in caller.purposes:
        raise Forbidden(f"insufficient_scope: the token does not carry purpose {requested}")
    return Purpose(requested)
