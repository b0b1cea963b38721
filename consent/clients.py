"""Registered OAuth clients: added by an administrator, with a secret shown once and stored
hashed, or with the client's public keys (private_key_jwt)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session, col, select

from app.core.errors import BadRequest, Conflict, NotFound
from consent.models import Client
from consent.oauth import PURPOSE_PREFIX, digest
from consent.scopes import Purpose, Scope


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if (
        parts.fragment
        or not parts.hostname
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
    ):
        raise BadRequest(f"redirect URI must be https (or http on loopback) without a fragment: {uri}")
    return uri


def add_client(
    *,
    session: Session,
    client_id: str,
    name: str,
    organisation: str,
    redirect_uris: Sequence[str],
    scopes: Sequence[Scope],
    purposes: Sequence[Purpose],
    require_par: bool = False,
) -> tuple[Client, str]:
    """Register a confidential client; returns it with its secret, which is never shown again."""
    secret = secrets.token_urlsafe(32)
    client = Client(
        client_id=client_id,
        name=name,
        organisation=organisation,
        secret_hash=digest(secret),
        redirect_uris=list(redirect_uris),
        scopes=sorted(Scope(s).value for s in scopes),
        purposes=sorted(Purpose(p).value for p in purposes),
        require_par=require_par,
    )
    return _register(session, client), secret


def add_key_client(
    *,
    session: Session,
    client_id: str,
    name: str,
    organisation: str,
    redirect_uris: Sequence[str],
    scopes: Sequence[Scope],
    purposes: Sequence[Purpose],
    jwks: dict[str, Any],
    require_par: bool = False,
) -> Client:
    """Register a client that authenticates with `private_key_jwt`: it holds its private key,
    we keep only its public JWKS, and it has no secret."""
    try:
        keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise BadRequest(f"not a JWK set: {exc}") from exc
    if not keyset.keys or any(key.is_private for key in keyset.keys):
        raise BadRequest("register the client's public keys only (a JWK set without private parts)")
    client = Client(
        client_id=client_id,
        name=name,
        organisation=organisation,
        jwks={"keys": [key.as_dict(private=False) for key in keyset.keys]},
        redirect_uris=list(redirect_uris),
        scopes=sorted(Scope(s).value for s in scopes),
        purposes=sorted(Purpose(p).value for p in purposes),
        require_par=require_par,
    )
    return _register(session, client)


def _register(session: Session, client: Client) -> Client:
    if session.exec(select(Client).where(Client.client_id == client.client_id)).first():
        raise Conflict(f"client {client.client_id!r} already exists")
    if not client.redirect_uris:
        raise BadRequest("a client needs at least one redirect URI")
    client.redirect_uris = [_check_redirect_uri(u) for u in client.redirect_uris]
    session.add(client)
    session.flush()
    return client


def list_clients(*, session: Session) -> Sequence[Client]:
    return session.exec(select(Client).order_by(col(Client.client_id))).all()


def disable_client(*, session: Session, client_id: str) -> Client:
    """A disabled client can no longer start, exchange, refresh or use anything."""
    client = session.exec(select(Client).where(Client.client_id == client_id)).first()
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    client.is_active = False
    session.add(client)
    session.flush()
    return client


def scope_string(client: Client) -> str:
    return " ".join([*client.scopes, *(f"{PURPOSE_PREFIX}{p}" for p in client.purposes)])
