"""Upstream tokens at rest: encrypted with a key derived from the installation's secret key."""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.config import get_settings


@cache
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tsunagu-upstream-tokens", info=b"v1").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(value: str) -> str:
    return _fernet(get_settings().secret_key.get_secret_value()).encrypt(value.encode()).decode()


def unseal(value: str) -> str:
    return _fernet(get_settings().secret_key.get_secret_value()).decrypt(value.encode()).decode()
