"""Every error becomes a clear answer: JSON `{"error", "detail"}` for APIs, a Japanese page for HTML."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import AppError
from app.web import render_error_page

log = logging.getLogger("tsunagu.errors")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "busy",
}
# Contention, not a fault: SQLite's write lock outlasting the busy timeout, PostgreSQL's lock
# timeout, deadlock or serialization failure. Nothing was committed; trying again works.
_BUSY_SQLSTATES = frozenset({"55P03", "40P01", "40001"})
_BUSY_SQLITE = ("database is locked", "database is busy", "database table is locked")
RETRY_AFTER_SECONDS = 2


def _database_busy(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in _BUSY_SQLSTATES or any(text in str(exc.orig) for text in _BUSY_SQLITE)


def wants_html(request: Request) -> bool:
    """Pages for people, JSON for programs: decided by the path, then by what the client accepts."""
    path = request.url.path
    if path.startswith(("/api/", "/oauth/", "/line/", "/.well-known/")) or path in (
        "/healthz",
        "/readyz",
        "/openapi.json",
    ):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(request: Request, status: int, code: str, detail: str) -> Response:
    if wants_html(request):
        return HTMLResponse(render_error_page(request, status, detail), status_code=status)
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def add_exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return error_response(request, exc.status_code, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        return error_response(request, 422, "invalid_request", problems)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> Response:
        if not _database_busy(exc):
            return await _unexpected(request, exc)
        log.warning("database busy", extra={"fields": {"path": request.url.path}})
        response = error_response(
            request,
            503,
            "busy",
            "ただいま混み合っています。少し待ってからもう一度お試しください（何も変更されていません）。"
            " / Busy right now; nothing was changed. Please try again in a moment.",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The traceback goes to the log with the request id; the client gets no internals.
        log.exception("unhandled error", extra={"fields": {"path": request.url.path}})
        return error_response(request, 500, "internal_error", "内部エラーが発生しました。")
