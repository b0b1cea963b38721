"""The committed OpenAPI document is what the app serves; regenerate with `tsunagu openapi export`."""

from __future__ import annotations

from app.cli import OPENAPI_PATH
from app.openapi import render_openapi


def test_openapi_document_is_current() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render_openapi(), (
        "openapi/openapi.json is stale: run `tsunagu openapi export`"
    )
