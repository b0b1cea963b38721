"""Rendering of the guardian's and student's pages: consent templates over the shared layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from app.core.config import get_settings
from app.web import TEMPLATE_DIRS, render_error_page
from consent.scopes import PURPOSE_WORDING, SCOPE_WORDING

templates = Jinja2Templates(directory=[str(Path(__file__).parent / "templates"), *map(str, TEMPLATE_DIRS)])
templates.env.globals["SCOPE_WORDING"] = {s.value: w for s, w in SCOPE_WORDING.items()}
templates.env.globals["PURPOSE_WORDING"] = {p.value: w for p, w in PURPOSE_WORDING.items()}
templates.env.globals["STATUS_WORDS"] = {
    "pending": "確認中 / pending",
    "active": "有効 / active",
    "paused": "一時停止中 / paused",
    "revoked": "取り消し済み / withdrawn",
    "expired": "期限切れ / expired",
    "rejected": "同意なし / declined",
}


def jst(moment: datetime) -> str:
    """A moment as the schools' local time (the settings' time zone), to the minute."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M")


templates.env.filters["jst"] = jst


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    # Pages about a child must not stay in a shared phone's cache or history.
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    return HTMLResponse(render_error_page(request, status, detail), status_code=status)
