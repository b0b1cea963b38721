"""HTTP of the authorization server: /oauth/* endpoints and the two well-known documents."""

from __future__ import annotations

from contextlib import ExitStack
from functools import partial
from typing import Annotated, Any

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.routing import Route

from app.core.config import get_settings
from app.core.db import SQLiteWriterTurn
from app.core.deps import SessionDep, UnitOfWork, unit_of_work
from app.core.errors import BadRequest
from app.sessions import service as web_sessions
from consent import authorize, keys, oauth, resource
from consent.deps import CurrentGuardian, MaybeGuardian, WriteSession, sign_in_url
from consent.web import error_page, render

router = APIRouter(tags=["oauth"])

FormPairs = list[tuple[str, str]]


async def form_pairs(request: Request) -> FormPairs:
    """The posted form as (name, value) pairs: repeated names stay visible to Authlib's checks."""
    if request.method != "POST":
        return []
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


Form = Annotated[FormPairs, Depends(form_pairs)]


def _oauth_request(request: Request, form: FormPairs) -> oauth.TsunaguRequest:
    try:
        return oauth.TsunaguRequest(
            method=request.method,
            uri=str(request.url),
            headers=request.headers,
            query=list(request.query_params.multi_items()),
            form=form,
        )
    except InsecureTransportError as exc:
        raise BadRequest("OAuth 2.0 requires https (or loopback in a demo).") from exc


def _answer(result: oauth.OAuthResponse) -> Response:
    headers = {k: v for k, v in result.headers if k.lower() not in ("location", "content-type")}
    headers.setdefault("Cache-Control", "no-store")
    if result.location:
        return RedirectResponse(result.location, status_code=302, headers=headers)
    body: Any = result.body if isinstance(result.body, dict) else {"detail": result.body}
    return JSONResponse(body, status_code=result.status, headers=headers)


def _page(request: Request, outcome: authorize.Outcome, csrf_token: str | None) -> Response:
    if isinstance(outcome, authorize.Redirect):
        return RedirectResponse(outcome.location, status_code=302)
    if isinstance(outcome, authorize.ErrorPage):
        return error_page(request, outcome.status, outcome.detail)
    if isinstance(outcome, authorize.SignInFirst):
        return RedirectResponse(sign_in_url(f"{request.url.path}?{request.url.query}"), status_code=303)
    return render(
        request,
        "consent/authorize.html",
        {"page": outcome, "csrf_token": csrf_token},
    )


@router.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata() -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    return oauth.metadata()


@router.get("/.well-known/jwks.json")
def jwks(session: SessionDep) -> dict[str, list[dict[str, str]]]:
    """The public keys that sign access tokens and consent receipts, current and retired."""
    keys.current_key(session=session)
    return keys.jwks(session=session)


@router.get("/oauth/authorize", include_in_schema=False)
def authorization_endpoint(request: Request, session: WriteSession, current: MaybeGuardian) -> Response:
    """Validate the client's request; ask a signed-in guardian for consent."""
    outcome = authorize.begin(
        session=session, request=_oauth_request(request, []), guardian_id=current.id if current else None
    )
    return _page(request, outcome, current.csrf_token if current else None)


@router.post("/oauth/authorize", include_in_schema=False)
def authorization_decision(
    request: Request, session: WriteSession, current: CurrentGuardian, form: Form
) -> Response:
    """The guardian's decision on the consent page (CSRF-checked)."""
    fields = dict(form)
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=fields.get("csrf_token"))
    child = fields.get("child_id", "")
    outcome = authorize.decide(
        session=session,
        request=_oauth_request(request, []),
        guardian_id=current.id,
        handle=fields.get("handle", ""),
        allow=fields.get("decision") == "allow",
        student_id=int(child) if child.isdigit() else None,
        scopes=[v for k, v in form if k == "scope"],
        purposes=[v for k, v in form if k == "purpose"],
    )
    return _page(request, outcome, current.csrf_token)


@router.post("/oauth/par", status_code=201)
def pushed_authorization_request(request: Request, session: WriteSession, form: Form) -> Response:
    """RFC 9126 pushed authorization request (client_secret_basic)."""
    return _answer(authorize.push(session=session, request=_oauth_request(request, form)))


async def token_endpoint(request: Request) -> Response:
    """Exchange a code (with its PKCE verifier) or a refresh token for tokens."""
    # The busiest endpoint. Its transaction opens, works and commits in one trip to the thread
    # pool, before the answer is sent.
    oauth_request = _oauth_request(request, await form_pairs(request))
    work = partial(_token_response, unit_of_work(request), oauth_request)
    return _answer(await anyio.to_thread.run_sync(work, limiter=_exchange_threads()))


# Each process runs its token exchanges on a thread or two of its own, not on the 40 of the
# default pool: more threads contending for the GIL cost CPU (callers wait in the event loop).
# On SQLite one thread: the writes take turns anyway. bench/consent.py, quiet machine: 802–942
# exchanges/s (1.69–2.0 ms of server CPU each) with one thread, 316–933/s (1.74–3.6 ms) with
# two or three, 432–828/s with the 40 of the default pool. On PostgreSQL two, so that one
# thread's round trips to the server overlap the other's work. Two balanced workers, machine
# loaded by other jobs (load 2.3–3), two runs each: 40 threads 519 and 612/s (2.58 and 2.1 ms),
# one 554 and 671/s, two 739 and 698/s (1.97 and 1.85 ms), four 579 and 602/s.
_EXCHANGE_THREADS_SQLITE = 1
_EXCHANGE_THREADS_POSTGRESQL = 2
_EXCHANGE_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("exchange_threads")


def _exchange_threads() -> anyio.CapacityLimiter:
    """The thread limiter of this event loop's token exchanges."""
    try:
        return _EXCHANGE_THREADS.get()
    except LookupError:
        sqlite = get_settings().is_sqlite
        limiter = anyio.CapacityLimiter(_EXCHANGE_THREADS_SQLITE if sqlite else _EXCHANGE_THREADS_POSTGRESQL)
        _EXCHANGE_THREADS.set(limiter)
        return limiter


# A plain Starlette route, matched first: FastAPI's dependency solving and endpoint wrappers
# were a fifth of an exchange (callgrind, SQLite: 3.71 → 2.99 M instructions per exchange).
# Clients find it in the RFC 8414 metadata, as OAuth clients do, rather than in OpenAPI.
token_route = Route("/oauth/token", token_endpoint, methods=["POST"])


# On SQLite the exchanges take turns to write (app.core.db.SQLiteWriterTurn), from their first
# write to their commit; what comes before (reads, client authentication, PKCE, signing)
# overlaps. Waiting in SQLite's busy handler instead, two processes of eight threads each
# holding the lock 2 ms made 225 writes/s; with a mutex per process in front, 390/s.
# PostgreSQL orders them with row locks.
_SQLITE_WRITER_TURN = SQLiteWriterTurn()


def _token_response(unit_of_work: UnitOfWork, request: oauth.TsunaguRequest) -> oauth.OAuthResponse:
    with ExitStack() as turn:
        # The turn is given back after the commit: the ExitStack closes after the unit of work.
        take_turn = (lambda: turn.enter_context(_SQLITE_WRITER_TURN())) if get_settings().is_sqlite else None
        with unit_of_work() as session:
            return oauth.token_response(session=session, request=request, before_writing=take_turn)


@router.post("/oauth/revoke")
def revocation_endpoint(request: Request, session: WriteSession, form: Form) -> Response:
    """RFC 7009 token revocation (client_secret_basic)."""
    server = oauth.AuthorizationServer(session=session)
    return _answer(server.create_endpoint_response("revocation", _oauth_request(request, form)))


@router.post("/oauth/introspect")
def introspection_endpoint(request: Request, session: SessionDep, form: Form) -> Response:
    """RFC 7662 token introspection (client_secret_basic; a client sees only its own tokens)."""
    server = oauth.AuthorizationServer(session=session)
    return _answer(server.create_endpoint_response("introspection", _oauth_request(request, form)))


class ChildRecords(BaseModel):
    child_id: int
    category: str
    purpose: str
    grant_id: int | None
    records: list[dict[str, Any]]


@router.get(
    "/api/v1/children/{child_id}/{category}",
    tags=["partner API"],
    response_model=ChildRecords,
    responses={
        401: {"description": "missing, forged, expired or revoked access token"},
        403: {"description": "the grant does not cover this scope or purpose (named in the detail)"},
        404: {"description": "the client has no grant for this child"},
    },
)
def child_records(
    session: WriteSession,
    child_id: int,
    category: str,
    purpose: str | None = None,
    authorization: Annotated[str | None, Header()] = None,
) -> ChildRecords:
    """A child's records of one category, for a partner client holding the family's grant."""
    caller = resource.authenticate(session=session, authorization=authorization)
    return ChildRecords.model_validate(
        resource.read(session=session, caller=caller, child_id=child_id, category=category, purpose=purpose)
    )
