"""private_key_jwt (RFC 7523 §2.2) on Authlib: a client registered with its public keys signs
a short assertion instead of sending a secret; each assertion is accepted once."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.db import get_engine
from app.core.errors import BadRequest
from consent import clients, oauth
from consent.models import Client
from consent.scopes import Purpose, Scope
from tests.consent.oauth_flow import REDIRECT_URI, Partner, obtain_code, sign_in_family

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _new_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4)})


def _key_client(session: Session, key: ECKey) -> Partner:
    client = clients.add_key_client(
        session=session,
        client_id=f"keyed-{secrets.token_hex(4)}",
        name="こども食堂ネットワーク",
        organisation="NPO法人こども食堂ネットワーク加賀",
        redirect_uris=[REDIRECT_URI],
        scopes=list(Scope),
        purposes=list(Purpose),
        jwks={"keys": [key.as_dict(private=False)]},
    )
    return Partner(client, secret="")


def _assertion(client_id: str, key: ECKey, *, jti: str | None = None, lifetime: int = 60) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{oauth.issuer()}/oauth/token",
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def _exchange(code: str, verifier: str, assertion: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


async def test_a_signed_assertion_authenticates_once(session: Session, https: httpx.AsyncClient) -> None:
    key = _new_key()
    partner = _key_client(session, key)
    family = sign_in_family(session, https)
    code, verifier = await obtain_code(https, partner, family)
    assertion = _assertion(partner.client_id, key)
    issued = await https.post("/oauth/token", data=_exchange(code, verifier, assertion))
    assert issued.status_code == 200, issued.text
    access = issued.json()["access_token"]

    # The same assertion again (a replay) is refused, even for a fresh code.
    code, verifier = await obtain_code(https, partner, family)
    replayed = await https.post("/oauth/token", data=_exchange(code, verifier, assertion))
    # RFC 6749 §5.2: 401 is for the Authorization header; an assertion in the body gets 400.
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_client"
    # Introspection authenticates the same way, with a new assertion.
    introspected = await https.post(
        "/oauth/introspect",
        data={
            "token": access,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(partner.client_id, key),
        },
    )
    assert introspected.status_code == 200 and introspected.json()["active"] is True


async def test_wrong_key_long_lived_and_secret_auth_are_refused(
    session: Session, https: httpx.AsyncClient
) -> None:
    key = _new_key()
    partner = _key_client(session, key)
    family = sign_in_family(session, https)
    for assertion in (
        _assertion(partner.client_id, _new_key()),  # not the registered key
        _assertion(partner.client_id, key, lifetime=3600),  # would have to be remembered an hour
    ):
        code, verifier = await obtain_code(https, partner, family)
        refused = await https.post("/oauth/token", data=_exchange(code, verifier, assertion))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    # A key client has no secret to send; basic auth with anything is refused.
    code, verifier = await obtain_code(https, partner, family)
    basic = await https.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(partner.client_id, "guess"),
    )
    assert basic.status_code == 401


def test_only_public_keys_are_registered(session: Session) -> None:
    key = _new_key()
    with pytest.raises(BadRequest):
        clients.add_key_client(
            session=session,
            client_id="leaky",
            name="n",
            organisation="o",
            redirect_uris=[REDIRECT_URI],
            scopes=list(Scope),
            purposes=list(Purpose),
            jwks={"keys": [key.as_dict(private=True)]},
        )


async def test_metadata_names_the_method_and_its_algorithms(https: httpx.AsyncClient) -> None:
    document = (await https.get("/.well-known/oauth-authorization-server")).json()
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "private_key_jwt"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_cli_registers_a_key_client_without_a_secret(tmp_path: Path, settings_env: None) -> None:
    jwks = tmp_path / "client.jwks"
    jwks.write_bytes(orjson.dumps({"keys": [_new_key().as_dict(private=False)]}))
    client_id = f"cli-keyed-{secrets.token_hex(4)}"
    try:
        result = CliRunner().invoke(
            cli,
            [
                "clients",
                "add",
                client_id,
                "--name",
                "n",
                "--organisation",
                "o",
                "--redirect-uri",
                REDIRECT_URI,
                "--jwks",
                str(jwks),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "private_key_jwt" in result.output and "client_secret" not in result.output
        with Session(get_engine()) as session:
            client = session.exec(select(Client).where(Client.client_id == client_id)).one()
            assert client.secret_hash is None and client.jwks is not None
            session.delete(client)
            session.commit()
    finally:
        get_engine().dispose()
