"""Consent receipts: a JWS over the grant's artefact, verifiable offline with the public JWKS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import Session

from consent import keys
from consent.models import Client, ConsentGrant, ConsentReceipt
from consent.notice import MUNICIPALITY_RECIPIENT
from consent.oauth import issuer

RECEIPT_TYP = "consent-receipt+jws"
RECEIPT_VERSION = 1


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def artefact(*, session: Session, grant: ConsentGrant) -> dict[str, Any]:
    """What was agreed, without names: ids, terms, and the hash of the exact notice shown."""
    client = session.get(Client, grant.client_id) if grant.client_id else None
    return {
        "receipt_version": RECEIPT_VERSION,
        "issuer": issuer(),
        "grant_id": grant.id,
        "grantor": f"guardian:{grant.guardian_id}",
        "child": f"student:{grant.student_id}",
        "recipient": client.organisation if client else MUNICIPALITY_RECIPIENT.ja,
        "client_id": client.client_id if client else None,
        "scopes": list(grant.scopes),
        "purposes": list(grant.purposes),
        "fetch_frequency": grant.fetch_frequency.value,
        "data_from": grant.data_from.isoformat() if grant.data_from else None,
        "data_life_days": grant.data_life_days,
        "starts_at": _iso(grant.starts_at),
        "expires_at": _iso(grant.expires_at),
        "notice_version": grant.notice_version,
        "notice_sha256": grant.notice_hash,
        "student_assent": grant.student_assent,
        "issued_at": _iso(grant.created_at),
    }


def issue(*, session: Session, grant: ConsentGrant) -> ConsentReceipt:
    assert grant.id is not None
    payload = orjson.dumps(artefact(session=session, grant=grant), option=orjson.OPT_SORT_KEYS)
    jws, kid = keys.sign_payload(session=session, payload=payload, typ=RECEIPT_TYP)
    receipt = ConsentReceipt(grant_id=grant.id, kid=kid, jws=jws)
    session.add(receipt)
    session.flush()
    return receipt


def verify(jws: str, *, jwks: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    """The agreed terms if the signature checks out against the JWKS, else keys.SignatureInvalid."""
    terms: dict[str, Any] = orjson.loads(keys.verify_payload(jws.strip(), keys=jwks, typ=RECEIPT_TYP))
    return terms
