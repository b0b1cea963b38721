"""Settings: production refuses the demo's well-known secrets."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from app.core.config import Mode, Settings


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="TSUNAGU_SECRET_KEY"):
        Settings(mode=Mode.production)


def test_production_starts_with_real_secrets() -> None:
    secret = SecretStr("x" * 40)
    settings = Settings(
        mode=Mode.production,
        secret_key=secret,
        school_affairs_client_secret=secret,
        national_id_client_secret=secret,
        school_platform_client_secret=secret,
        line_channel_secret=secret,
        line_channel_access_token=secret,
    )
    assert settings.mode is Mode.production


def test_demo_allows_defaults_and_defaults_to_sqlite() -> None:
    settings = Settings(mode=Mode.demo)
    assert settings.is_sqlite
