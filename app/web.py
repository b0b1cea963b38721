"""Server-rendered pages: one Jinja2 environment, the shared layout, and the error page."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates

TEMPLATE_DIRS = [Path(__file__).parent / "templates"]
templates = Jinja2Templates(directory=[str(p) for p in TEMPLATE_DIRS])

_ERROR_TITLES = {
    400: ("入力に誤りがあります", "The request could not be understood"),
    401: ("サインインが必要です", "Sign-in required"),
    403: ("この操作は許可されていません", "Not allowed"),
    404: ("ページが見つかりません", "Not found"),
    409: ("すでに処理されています", "Already done"),
    422: ("入力内容を確認してください", "Please check your input"),
    429: ("しばらく待ってからお試しください", "Too many attempts"),
    500: ("エラーが発生しました", "Something went wrong"),
    503: ("ただいま利用できません", "Temporarily unavailable"),
}


def render_error_page(request: Request, status: int, detail: str) -> str:
    title_ja, title_en = _ERROR_TITLES.get(status, _ERROR_TITLES[400 if status < 500 else 500])
    template = templates.get_template("error.html")
    return template.render(
        request=request, status=status, title_ja=title_ja, title_en=title_en, detail=detail
    )
