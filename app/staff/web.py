"""Rendering of the console's pages: its own templates over the shared layout, never cached."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from app.core.config import get_settings
from app.staff.access import MATRIX
from app.web import TEMPLATE_DIRS

templates = Jinja2Templates(directory=[str(Path(__file__).parent / "templates"), *map(str, TEMPLATE_DIRS)])
templates.env.globals["ROLES"] = MATRIX


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    # Pages about children must not stay in a shared computer's cache or history.
    response.headers["Cache-Control"] = "no-store"
    return response


def local_today() -> date:
    """Today where the schools are (the settings' time zone), not where the server is."""
    return datetime.now(ZoneInfo(get_settings().timezone)).date()
