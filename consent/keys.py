"""Signing keys for access tokens and consent receipts: create, rotate, publish, sign, verify."""

from __future__ import annotations

import secrets
import time
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError
from sqlmodel import Session, col, select

from app.core.types import utcnow
from consent.models import SigningKey

ALGORITHM = "ES256"


class SignatureInvalid(Exception):
    """A token or receipt whose signature, key or claims do not check out."""


def _new_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = f"{utcnow():%Y%m%d}-{secrets.token_hex(4)}"
    public = jwk.construct(pem, ALGORITHM).public_key().to_dict()
    public_jwk = {k: str(v) for k, v in public.items()} | {"kid": kid, "use": "sig", "alg": ALGORITHM}
    return SigningKey(kid=kid, algorithm=ALGORITHM, private_pem=pem, public_jwk=public_jwk)


# The signing key as last read, and when: every token exchange signs, and reading the key
# row each time was a query per exchange. A rotation reaches every process within the TTL;
# until then a process signs with the previous key, whose public half stays published, so its
# tokens and receipts still verify. Revocation never depends on this cache.
SIGNING_KEY_TTL_SECONDS = 30.0
_signing: tuple[float, str, str] | None = None  # (read at, kid, private PEM)


def forget_signing_key() -> None:
    """Read the signing key afresh on the next signature (after a rotation, or a test's rollback)."""
    global _signing
    _signing = None


def _signing_key(session: Session) -> tuple[str, str]:
    global _signing
    now = time.monotonic()
    if _signing is None or now - _signing[0] > SIGNING_KEY_TTL_SECONDS:
        key = current_key(session=session)
        assert key.private_pem is not None
        _signing = (now, key.kid, key.private_pem)
    return _signing[1], _signing[2]


def current_key(*, session: Session) -> SigningKey:
    """The key that signs now; the first call on an empty installation creates one."""
    key = session.exec(
        select(SigningKey)
        .where(col(SigningKey.retired_at).is_(None), col(SigningKey.private_pem).is_not(None))
        .order_by(col(SigningKey.created_at).desc())
    ).first()
    if key is None:
        key = _new_key()
        session.add(key)
        session.flush()
    return key


def rotate(*, session: Session) -> SigningKey:
    """Start signing with a new key; the old ones keep only their public half, still published."""
    now = utcnow()
    for old in session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None))).all():
        old.retired_at = now
        old.private_pem = None
        session.add(old)
    key = _new_key()
    session.add(key)
    session.flush()
    forget_signing_key()  # this process signs with the new key at once
    return key


def jwks(*, session: Session) -> dict[str, list[dict[str, str]]]:
    """Every public key, current and retired: the JWKS anyone verifies receipts with."""
    keys = session.exec(select(SigningKey).order_by(col(SigningKey.created_at))).all()
    return {"keys": [dict(k.public_jwk) for k in keys]}


@lru_cache(maxsize=16)
def _signer(kid: str, pem: str) -> Any:
    # Parsing the PEM costs as much as signing; a key never changes under its kid.
    return jwk.construct(pem, ALGORITHM)


def sign_jwt(*, session: Session, claims: dict[str, Any], typ: str) -> str:
    kid, pem = _signing_key(session)
    return str(jwt.encode(claims, _signer(kid, pem), algorithm=ALGORITHM, headers={"kid": kid, "typ": typ}))


def verify_jwt(
    token: str,
    *,
    keys: dict[str, list[dict[str, str]]],
    typ: str,
    issuer: str,
    audience: str | None = None,
) -> dict[str, Any]:
    """The claims of a JWT we signed, or SignatureInvalid (forged, expired, wrong type or key)."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != typ or header.get("alg") != ALGORITHM:
            raise SignatureInvalid(f"not a {typ} signed with {ALGORITHM}")
        claims: dict[str, Any] = jwt.decode(
            token,
            keys,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"verify_aud": audience is not None},
        )
    except JOSEError as exc:
        raise SignatureInvalid(str(exc)) from exc
    return claims


def sign_payload(*, session: Session, payload: bytes, typ: str) -> tuple[str, str]:
    """A compact JWS over raw bytes (the receipt); returns (jws, kid)."""
    key = current_key(session=session)
    assert key.private_pem is not None
    token = jws.sign(
        payload, _signer(key.kid, key.private_pem), headers={"kid": key.kid, "typ": typ}, algorithm=ALGORITHM
    )
    return str(token), key.kid


def verify_payload(token: str, *, keys: dict[str, list[dict[str, str]]], typ: str) -> bytes:
    """The signed bytes of a compact JWS, checked against the published keys."""
    try:
        header = jws.get_unverified_header(token)
        if header.get("typ") != typ or header.get("alg") != ALGORITHM:
            raise SignatureInvalid(f"not a {typ} signed with {ALGORITHM}")
        matching = [k for k in keys.get("keys", []) if k.get("kid") == header.get("kid")]
        if not matching:
            raise SignatureInvalid(f"no published key with kid {header.get('kid')!r}")
        payload: bytes = jws.verify(token, matching[0], algorithms=[ALGORITHM])
    except JOSEError as exc:
        raise SignatureInvalid(str(exc)) from exc
    return payload
