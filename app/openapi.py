"""The exported OpenAPI document: the same bytes from the CLI and from the staleness test."""

from __future__ import annotations

import json

from app.main import create_app


def render_openapi() -> str:
    return json.dumps(create_app().openapi(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
