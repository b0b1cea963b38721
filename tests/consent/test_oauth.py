"""The authorization server: one test per OAuth rule of issue 5, and the tokens it issues."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from jose import jwt
from sqlmodel import Session, select

from app.core.types import utcnow
from consent import oauth, service
from consent.models import AuthorizationCode, ConsentGrant, GrantEventKind, OAuthToken
from consent.scopes import Purpose, Scope
from tests.consent.oauth_flow import (
    REDIRECT_URI,
    Family,
    Partner,
    approve,
    authorize_params,
    exchange,
    introspect,
    obtain_code,
    pkce_pair,
    query_of,
    register_partner,
    sign_in_family,
)
from tests.factories import GUARDIAN_ACTOR


async def _tokens(https: httpx.AsyncClient, partner: Partner, family: Family) -> dict[str, str]:
    code, verifier = await obtain_code(https, partner, family)
    response = await exchange(https, partner, code, verifier)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_full_flow_issues_rfc9068_jwt_for_exactly_what_was_approved(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    tokens = await _tokens(https, partner, family)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    assert tokens["scope"] == "school.attendance purpose:early_support"
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    jwks = (await https.get("/.well-known/jwks.json")).json()
    claims = jwt.decode(
        tokens["access_token"],
        jwks,
        algorithms=["ES256"],
        audience=oauth.resource_audience(),
        issuer=oauth.issuer(),
    )
    assert claims["client_id"] == partner.client_id and claims["child_id"] == family.student_id
    assert {"iss", "exp", "aud", "sub", "iat", "jti", "scope"} <= set(claims)
    assert claims["exp"] - claims["iat"] <= 300
    grant = session.get(ConsentGrant, claims["grant_id"])
    assert grant is not None
    assert (grant.scopes, grant.purposes, grant.client_id) == (
        ["school.attendance"],
        ["early_support"],
        partner.client.id,
    )


async def test_consent_page_starts_with_every_toggle_off(session: Session, https: httpx.AsyncClient) -> None:
    partner, _family = register_partner(session), sign_in_family(session, https)
    _verifier, challenge = pkce_pair()
    page = await https.get("/oauth/authorize", params=authorize_params(partner, challenge))
    assert page.status_code == 200
    boxes = [line for line in page.text.splitlines() if 'type="checkbox"' in line]
    assert len(boxes) == 4 and not any("checked" in line for line in boxes)
    for words in ("受け取る者", "保存期間", "取り消し", "問い合わせ先", "NPO法人こども食堂ネットワーク加賀"):
        assert words in page.text


async def test_missing_pkce_is_refused_by_redirect_with_iss(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, _family = register_partner(session), sign_in_family(session, https)
    response = await https.get("/oauth/authorize", params=authorize_params(partner, None))
    assert response.status_code == 302
    answer = query_of(response)
    assert (answer["error"], answer["state"], answer["iss"]) == (
        "invalid_request",
        "xyz-state",
        oauth.issuer(),
    )


async def test_plain_pkce_is_refused(session: Session, https: httpx.AsyncClient) -> None:
    partner, _family = register_partner(session), sign_in_family(session, https)
    verifier, _challenge = pkce_pair()
    params = authorize_params(partner, None, code_challenge=verifier, code_challenge_method="plain")
    response = await https.get("/oauth/authorize", params=params)
    assert query_of(response)["error"] == "invalid_request"


async def test_wrong_verifier_is_refused(session: Session, https: httpx.AsyncClient) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    code, _verifier = await obtain_code(https, partner, family)
    other_verifier, _ = pkce_pair()
    response = await exchange(https, partner, code, other_verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_verifier_without_prior_challenge_is_refused(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    code, verifier = await obtain_code(https, partner, family)
    row = session.exec(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == oauth.digest(code))
    ).one()
    row.code_challenge = row.code_challenge_method = None  # a code issued without a challenge
    session.add(row)
    session.flush()
    with_verifier = await exchange(https, partner, code, verifier)
    without_verifier = await exchange(https, partner, code, None)
    assert with_verifier.status_code == without_verifier.status_code == 400
    assert with_verifier.json()["error"] == "invalid_grant"


async def test_reused_code_is_refused_and_revokes_what_it_issued(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    code, verifier = await obtain_code(https, partner, family)
    first = await exchange(https, partner, code, verifier)
    assert first.status_code == 200
    second = await exchange(https, partner, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert (await introspect(https, partner, first.json()["access_token"])) == {"active": False}
    refreshed = await https.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
        auth=partner.auth,
    )
    assert refreshed.status_code == 400


async def test_code_spent_by_a_racing_exchange_is_refused_and_revokes_what_that_issued(
    session: Session, https: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite the exchange's reads take no lock, so another exchange of the same code may
    # spend it between this one's read and its write: here it does, right after the read.
    partner, family = register_partner(session), sign_in_family(session, https)
    code, verifier = await obtain_code(https, partner, family)
    read_exchange = oauth.AuthorizationServer.read_exchange

    def read_then_lose_the_race(server: oauth.AuthorizationServer, request: oauth.TsunaguRequest) -> None:
        read_exchange(server, request)
        row = server.exchange_code(code)
        assert row is not None and row.used_at is None
        now = utcnow()
        codes: sa.Table = AuthorizationCode.__table__  # type: ignore[attr-defined]
        server.connection.execute(sa.update(codes).where(codes.c.id == row.id).values(used_at=now))
        server.connection.execute(
            sa.insert(OAuthToken.__table__).values(  # type: ignore[attr-defined]
                client_id=row.client_id,
                guardian_id=row.guardian_id,
                grant_id=row.grant_id,
                code_id=row.id,
                family_id="racing-exchange",
                access_jti="racing-exchange",
                scope=row.scope,
                issued_at=now,
                access_expires_at=now + timedelta(minutes=5),
            )
        )

    monkeypatch.setattr(oauth.AuthorizationServer, "read_exchange", read_then_lose_the_race)
    response = await exchange(https, partner, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    winner = session.exec(select(OAuthToken).where(OAuthToken.access_jti == "racing-exchange")).one()
    session.refresh(winner)
    assert winner.revoked_at is not None
    assert session.exec(select(OAuthToken).where(OAuthToken.code_id == winner.code_id)).all() == [winner]


async def test_expired_code_is_refused(session: Session, https: httpx.AsyncClient) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    code, verifier = await obtain_code(https, partner, family)
    row = session.exec(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == oauth.digest(code))
    ).one()
    assert row.expires_at - row.issued_at <= timedelta(seconds=60)
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)
    session.flush()
    response = await exchange(https, partner, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_redirect_uri_mismatch_shows_an_error_page_and_never_redirects(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    _verifier, challenge = pkce_pair()
    for redirect_uri in (REDIRECT_URI + "/", REDIRECT_URI.upper(), "https://evil.example/callback"):
        params = authorize_params(partner, challenge, redirect_uri=redirect_uri)
        response = await https.get("/oauth/authorize", params=params, headers={"accept": "text/html"})
        assert response.status_code == 400 and "location" not in response.headers
        assert "text/html" in response.headers["content-type"]
    # At the token endpoint the exact URI of the request is required too.
    code, verifier = await obtain_code(https, partner, family)
    response = await exchange(https, partner, code, verifier, redirect_uri=REDIRECT_URI + "?x=1")
    assert response.json()["error"] == "invalid_grant"


async def test_unknown_client_shows_an_error_page(session: Session, https: httpx.AsyncClient) -> None:
    _verifier, challenge = pkce_pair()
    partner = register_partner(session)
    params = authorize_params(partner, challenge, client_id="nobody")
    response = await https.get("/oauth/authorize", params=params)
    assert response.status_code == 400 and "location" not in response.headers


async def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_family(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    first = await _tokens(https, partner, family)

    async def refresh(token: str) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": token}
        return await https.post("/oauth/token", data=data, auth=partner.auth)

    rotated = await refresh(first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await introspect(https, partner, second["access_token"]))["active"] is True
    replay = await refresh(first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await introspect(https, partner, second["access_token"])) == {"active": False}
    assert (await refresh(second["refresh_token"])).status_code == 400


async def test_refresh_token_spent_by_a_racing_refresh_is_a_replay(
    session: Session, https: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    first = await _tokens(https, partner, family)
    authenticate = oauth.RefreshGrant.authenticate_refresh_token

    def authenticate_then_lose_the_race(
        grant: oauth.RefreshGrant, refresh_token: str
    ) -> oauth.StoredToken | None:
        stored = authenticate(grant, refresh_token)
        assert stored is not None
        tokens = OAuthToken.__table__  # type: ignore[attr-defined]
        grant.server.connection.execute(
            sa.update(tokens).where(tokens.c.id == stored.row.id).values(refresh_used_at=utcnow())
        )
        return stored

    monkeypatch.setattr(oauth.RefreshGrant, "authenticate_refresh_token", authenticate_then_lose_the_race)
    data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    replay = await https.post("/oauth/token", data=data, auth=partner.auth)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await introspect(https, partner, first["access_token"])) == {"active": False}


async def test_pushed_request_is_single_use(session: Session, https: httpx.AsyncClient) -> None:
    partner, _family = register_partner(session, require_par=True), sign_in_family(session, https)
    _verifier, challenge = pkce_pair()
    params = authorize_params(partner, challenge)
    unpushed = await https.get("/oauth/authorize", params=params)
    assert unpushed.status_code == 400
    unauthenticated = await https.post("/oauth/par", data=params)
    assert unauthenticated.status_code == 401
    pushed = await https.post("/oauth/par", data=params, auth=partner.auth)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and body["expires_in"] < 600
    use = {"client_id": partner.client_id, "request_uri": body["request_uri"]}
    assert (await https.get("/oauth/authorize", params=use)).status_code == 200
    assert (await https.get("/oauth/authorize", params=use)).status_code == 400


async def test_iss_is_in_every_authorization_response(session: Session, https: httpx.AsyncClient) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    _verifier, challenge = pkce_pair()
    page = await https.get("/oauth/authorize", params=authorize_params(partner, challenge))
    approved = await approve(https, family, page)
    assert query_of(approved)["iss"] == oauth.issuer()
    page = await https.get("/oauth/authorize", params=authorize_params(partner, challenge))
    denied = await https.post(
        "/oauth/authorize",
        data={"csrf_token": family.csrf_token, "handle": _handle(page), "decision": "deny"},
    )
    answer = query_of(denied)
    assert (answer["error"], answer["state"], answer["iss"]) == ("access_denied", "xyz-state", oauth.issuer())


def _handle(page: httpx.Response) -> str:
    from tests.consent.oauth_flow import consent_handle

    return consent_handle(page)


async def test_metadata_is_truthful(session: Session, https: httpx.AsyncClient) -> None:
    partner = register_partner(session)
    document = (await https.get("/.well-known/oauth-authorization-server")).json()
    AuthorizationServerMetadata(document).validate()
    assert document["issuer"] == oauth.issuer()
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "private_key_jwt"]
    assert document["authorization_response_iss_parameter_supported"] is True
    for key in (
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "pushed_authorization_request_endpoint",
    ):
        path = document[key].removeprefix(oauth.issuer())
        assert (await https.post(path, data={})).status_code not in (404, 405), key
    jwks_path = document["jwks_uri"].removeprefix(oauth.issuer())
    assert (await https.get(jwks_path)).json()["keys"]
    # What it does not list, it does not do: implicit and password grants.
    _verifier, challenge = pkce_pair()
    implicit = await https.get(
        "/oauth/authorize", params=authorize_params(partner, challenge, response_type="token")
    )
    assert query_of(implicit)["error"] == "unsupported_response_type"
    password = await https.post(
        "/oauth/token", data={"grant_type": "password", "username": "a", "password": "b"}, auth=partner.auth
    )
    assert password.json()["error"] == "unsupported_grant_type"


async def test_revocation_and_introspection_need_the_clients_own_credentials(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, other = register_partner(session), register_partner(session)
    family = sign_in_family(session, https)
    tokens = await _tokens(https, partner, family)
    anonymous = await https.post("/oauth/introspect", data={"token": tokens["access_token"]})
    assert anonymous.status_code == 401
    assert (await introspect(https, other, tokens["access_token"])) == {"active": False}
    assert (await introspect(https, partner, tokens["access_token"]))["active"] is True
    revoked = await https.post("/oauth/revoke", data={"token": tokens["refresh_token"]}, auth=partner.auth)
    assert revoked.status_code == 200
    assert (await introspect(https, partner, tokens["access_token"])) == {"active": False}


async def test_revoking_the_grant_makes_its_tokens_inactive(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    tokens = await _tokens(https, partner, family)
    grant_id = jwt.get_unverified_claims(tokens["access_token"])["grant_id"]
    grant = session.get(ConsentGrant, grant_id)
    assert grant is not None
    service.transition(session=session, grant=grant, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR)
    assert (await introspect(https, partner, tokens["access_token"])) == {"active": False}
    assert all(t.revoked_at for t in session.exec(select(OAuthToken).where(OAuthToken.grant_id == grant_id)))


async def test_consent_post_without_csrf_is_refused(session: Session, https: httpx.AsyncClient) -> None:
    partner, _family = register_partner(session), sign_in_family(session, https)
    _verifier, challenge = pkce_pair()
    page = await https.get("/oauth/authorize", params=authorize_params(partner, challenge))
    response = await https.post("/oauth/authorize", data={"handle": _handle(page), "decision": "allow"})
    assert response.status_code == 403


async def test_guardian_cannot_consent_for_another_familys_child(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner, family = register_partner(session), sign_in_family(session, https)
    from tests.factories import make_student

    stranger = make_student(session)
    _verifier, challenge = pkce_pair()
    page = await https.get("/oauth/authorize", params=authorize_params(partner, challenge))
    form = {
        "csrf_token": family.csrf_token,
        "handle": _handle(page),
        "child_id": str(stranger.id),
        "decision": "allow",
        "scope": Scope.school_attendance.value,
        "purpose": Purpose.early_support.value,
    }
    response = await https.post("/oauth/authorize", data=form)
    assert response.status_code == 404
    assert session.exec(select(ConsentGrant).where(ConsentGrant.student_id == stranger.id)).first() is None


async def test_signed_out_browser_is_sent_to_sign_in_and_back(
    session: Session, https: httpx.AsyncClient
) -> None:
    partner = register_partner(session)
    _verifier, challenge = pkce_pair()
    response = await https.get("/oauth/authorize", params=authorize_params(partner, challenge))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/guardian/sign-in?next=%2Foauth%2Fauthorize%3F")
