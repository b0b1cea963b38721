"""Fixtures of the consent tests: the app over https (OAuth refuses plain http off loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from limits.storage import MemoryStorage

from app.core.config import get_settings
from consent import invitations, signin
from mocks.national_id.app import create_app as create_national_id
from tests.consent.people import RESIDENTS
from tests.live_server import live_server


@pytest.fixture
async def https(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


@pytest.fixture
def national_id(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The national-ID stand-in served for real on an ephemeral port, known to the settings."""
    standin = create_national_id(redirect_uris=[signin.redirect_uri()], people=RESIDENTS)
    with live_server(standin) as url:
        monkeypatch.setenv("TSUNAGU_NATIONAL_ID_URL", url)
        get_settings.cache_clear()
        yield url
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def fresh_invitation_throttle(request: pytest.FixtureRequest) -> None:
    """Each test counts invitation attempts from zero (the real throttle lives for the process)."""
    if "app" not in request.fixturenames:
        return
    app: FastAPI = request.getfixturevalue("app")
    throttle = invitations.InvitationThrottle(MemoryStorage())
    app.dependency_overrides[invitations.invitation_throttle] = lambda: throttle
