"""Request ids and the one log line per request, as plain ASGI middleware.

Plain ASGI rather than Starlette's BaseHTTPMiddleware (`@app.middleware("http")`), which runs the
rest of the app in a second task and copies every response through a stream: on the token
endpoint that was a measurable share of each request's CPU.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import request_id_var

log = logging.getLogger("tsunagu.http")


def _request_id(scope: Scope) -> str:
    # A caller's id is kept only if it looks like one of ours, so logs cannot be injected.
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = str(value, "latin-1")
            if incoming.isalnum() and len(incoming) <= 64:
                return incoming
            break
    return uuid.uuid4().hex


class RequestContext:
    """Give each HTTP request an id (in the logs and the `x-request-id` header) and log it once:
    method, path (never the query string, which may carry codes or tokens), status, time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    }
                },
            )
            request_id_var.reset(token)
