"""The authorization endpoint's steps: validate the client's request, show the guardian the
consent page, and turn the guardian's choice into a grant and a code (or a refusal).

The consent page never writes token tables: it records the grant and hands Authlib the
guardian's decision, and Authlib issues the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.errors import BadRequest, NotFound
from app.core.types import utcnow
from app.roster.models import GuardianLink, Student
from consent import service
from consent.models import AuthorizationRequest, Client
from consent.notice import DATA_LIFE_DAYS, Notice, build_notice
from consent.oauth import (
    CLIENT_AUTH_METHODS,
    PUSHED_REQUEST_TTL,
    REQUEST_URI_PREFIX,
    AuthorizationServer,
    ConsentingGuardian,
    OAuthResponse,
    TsunaguRequest,
    aware,
    digest,
    error_redirect,
    hold_request,
    join_scope,
    split_scope,
    take_request,
)
from consent.scopes import Purpose, Scope, Wording


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class ErrorPage:
    status: int
    detail: str


@dataclass(frozen=True)
class SignInFirst:
    pass


@dataclass(frozen=True)
class ConsentPage:
    handle: str
    client: Client
    notice: Notice
    children: list[Student]


Outcome = Redirect | ErrorPage | SignInFirst | ConsentPage
_START_AGAIN = (
    "この同意画面は期限切れか、すでに使われています。もう一度はじめからお試しください。"
    " / This consent page expired or was already used; please start again."
)


def guardian_actor(guardian_id: int) -> Actor:
    return Actor(kind=ActorKind.guardian, ref=f"guardian:{guardian_id}", organisation="家庭 / family")


def linked_children(*, session: Session, guardian_id: int) -> list[Student]:
    """The children this guardian has verified links to (through an invitation code)."""
    return list(
        session.exec(
            select(Student)
            .join(GuardianLink, col(GuardianLink.student_id) == Student.id)
            .where(GuardianLink.guardian_id == guardian_id, col(GuardianLink.verified_at).is_not(None))
            .order_by(col(Student.id))
        ).all()
    )


def _oauth_request(base: TsunaguRequest, params: dict[str, str]) -> TsunaguRequest:
    return TsunaguRequest(
        method="GET", uri=base.uri, headers=base.headers, query=list(params.items()), form=[]
    )


def _failure(server: AuthorizationServer, error: OAuth2Error) -> Outcome:
    location = error_redirect(error)
    if location:
        return Redirect(location)
    return ErrorPage(400, f"{error.error}: {error.description or ''}".strip(": "))


def _notice_for(client: Client, scope: str) -> Notice:
    scopes, purposes = split_scope(scope)
    return build_notice(
        recipient=Wording(client.organisation, client.organisation), scopes=scopes, purposes=purposes
    )


def _pushed(session: Session, params: dict[str, str]) -> AuthorizationRequest | ErrorPage | None:
    request_uri = params.get("request_uri")
    if request_uri is None:
        return None
    handle = request_uri.removeprefix(REQUEST_URI_PREFIX)
    row = session.exec(
        select(AuthorizationRequest).where(AuthorizationRequest.handle_hash == digest(handle))
    ).first()
    client = session.get(Client, row.client_id) if row else None
    if (
        row is None
        or not row.pushed
        or row.used_at is not None
        or aware(row.expires_at) <= utcnow()
        or client is None
        or client.client_id != params.get("client_id")
    ):
        return ErrorPage(400, "invalid_request_uri: the request_uri is unknown, used or not this client's")
    return row


def begin(*, session: Session, request: TsunaguRequest, guardian_id: int | None) -> Outcome:
    """GET /oauth/authorize: check the request before anything else, then the guardian."""
    server = AuthorizationServer(session=session)
    params = dict(request.payload.data)
    pushed = _pushed(session, params)
    if isinstance(pushed, ErrorPage):
        return pushed
    if pushed is not None:
        params = dict(pushed.params)
    elif (client := server.query_client(params.get("client_id", ""))) is not None and client.row.require_par:
        return ErrorPage(400, "invalid_request: this client must use pushed authorization requests (PAR)")
    oauth_request = _oauth_request(request, params)
    try:
        server.get_consent_grant(request=oauth_request, end_user=None)
    except OAuth2Error as error:
        return _failure(server, error)
    if guardian_id is None:
        return SignInFirst()
    if (
        pushed is not None
        and take_request(session=session, handle=params_handle(request), pushed=True) is None
    ):
        return ErrorPage(400, "invalid_request_uri: the request_uri expired or was already used")
    client_row = oauth_request.client.row
    handle = hold_request(session=session, client=client_row, params=params, pushed=False)
    return ConsentPage(
        handle=handle,
        client=client_row,
        notice=_notice_for(client_row, oauth_request.scope),
        children=linked_children(session=session, guardian_id=guardian_id),
    )


def params_handle(request: TsunaguRequest) -> str:
    return str(request.payload.data.get("request_uri", "")).removeprefix(REQUEST_URI_PREFIX)


def decide(
    *,
    session: Session,
    request: TsunaguRequest,
    guardian_id: int,
    handle: str,
    allow: bool,
    student_id: int | None,
    scopes: Sequence[str],
    purposes: Sequence[str],
) -> Outcome:
    """POST /oauth/authorize: the guardian's choice. Only what was requested can be approved;
    approving nothing is refused before the held request is used up."""
    held = session.exec(
        select(AuthorizationRequest).where(AuthorizationRequest.handle_hash == digest(handle))
    ).first()
    if held is None or held.pushed:
        return ErrorPage(400, _START_AGAIN)
    server = AuthorizationServer(session=session)
    oauth_request = _oauth_request(request, dict(held.params))
    try:
        grant = server.get_consent_grant(request=oauth_request, end_user=None)
    except OAuth2Error as error:
        return _failure(server, error)
    requested_scopes, requested_purposes = split_scope(oauth_request.scope)
    chosen_scopes = [Scope(s) for s in scopes if s in {r.value for r in requested_scopes}]
    chosen_purposes = [Purpose(p) for p in purposes if p in {r.value for r in requested_purposes}]
    children = {c.id: c for c in linked_children(session=session, guardian_id=guardian_id)}
    if allow:
        if student_id not in children:
            raise NotFound("お子さまが見つかりません / child not found")
        if not chosen_scopes or not chosen_purposes:
            raise BadRequest(
                "共有する項目と目的をそれぞれ1つ以上選んでください。"
                " / Choose at least one item and one purpose."
            )
    if take_request(session=session, handle=handle, pushed=False) is None:
        return ErrorPage(
            400, "この同意画面は期限切れです。もう一度はじめからお試しください。 / This consent page expired."
        )
    user: ConsentingGuardian | None = None
    if allow:
        assert student_id is not None
        client_row = oauth_request.client.row
        notice = _notice_for(client_row, oauth_request.scope)
        consent_grant = service.create_grant(
            session=session,
            actor=guardian_actor(guardian_id),
            guardian_id=guardian_id,
            student_id=student_id,
            client_id=client_row.id,
            scopes=chosen_scopes,
            purposes=chosen_purposes,
            notice_version=notice.version,
            notice_hash=notice.sha256,
            data_life_days=DATA_LIFE_DAYS,
        )
        assert consent_grant.id is not None
        user = ConsentingGuardian(
            guardian_id, consent_grant.id, student_id, join_scope(chosen_scopes, chosen_purposes)
        )
    response: OAuthResponse = server.create_authorization_response(
        request=oauth_request, grant_user=user, grant=grant
    )
    if response.location is None:
        return ErrorPage(response.status, str(response.body))
    return Redirect(response.location)


def push(*, session: Session, request: TsunaguRequest) -> OAuthResponse:
    """POST /oauth/par (RFC 9126): an authenticated client pushes its request, gets a request_uri."""
    server = AuthorizationServer(session=session)
    try:
        client = server.authenticate_client(request, CLIENT_AUTH_METHODS, endpoint="par")
        params = {k: v for k, v in request.payload.data.items() if k != "request_uri"}
        if "request_uri" in request.payload.data:
            raise InvalidRequestError("request_uri is not allowed in a pushed request")
        if params.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id does not match the authenticated client")
        params["client_id"] = client.client_id
        server.get_consent_grant(request=_oauth_request(request, params), end_user=None)
    except OAuth2Error as error:
        # A pushed request is answered to the client directly, never redirected.
        error.redirect_uri = None
        status, body, headers = error(None)
        return OAuthResponse(status, body, list(headers))
    handle = hold_request(session=session, client=client.row, params=params, pushed=True)
    answer: dict[str, Any] = {
        "request_uri": f"{REQUEST_URI_PREFIX}{handle}",
        "expires_in": int(PUSHED_REQUEST_TTL.total_seconds()),
    }
    return OAuthResponse(201, answer, [("Cache-Control", "no-store")])
