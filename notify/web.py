"""Rendering of notify's pages: its own templates over the shared and staff layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from app.staff.web import templates as staff_templates
from app.web import TEMPLATE_DIRS
from notify.outbox import aware

_STAFF_DIRS = [str(p) for p in staff_templates.env.loader.searchpath]  # type: ignore[union-attr]
templates = Jinja2Templates(
    directory=[str(Path(__file__).parent / "templates"), *_STAFF_DIRS, *map(str, TEMPLATE_DIRS)]
)
templates.env.globals.update(staff_templates.env.globals)
# SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
templates.env.filters["aware"] = aware


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
