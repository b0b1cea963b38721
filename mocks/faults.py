"""Fault knobs shared by the stand-ins, set at run time through `/_control/faults`.

A person or a test turns a knob (`PUT /_control/faults` with some of the fields below) and the
stand-in misbehaves as real upstreams do: slowly, not at all, with 429 or 5xx, with a cut-off
body, with paging anomalies, an expiring token or a changed schema. Counting knobs (`*_requests`)
fire on that many data requests and then switch themselves off. `GET /_control/requests` lists
what was asked (path, resource, the students named), so tests can prove what was never fetched.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

Drift = Literal["unknown_field", "missing_field", "unknown_code"]


class Faults(BaseModel):
    latency_ms: int = Field(default=0, ge=0, description="added to every data request")
    hang_requests: int = Field(default=0, ge=0, description="the next N data requests never answer in time")
    hang_seconds: float = Field(default=5.0, ge=0)
    rate_limit_requests: int = Field(default=0, ge=0, description="the next N answer 429")
    retry_after_seconds: int = Field(default=1, ge=0)
    server_error_requests: int = Field(default=0, ge=0, description="the next N answer 503")
    truncate_requests: int = Field(default=0, ge=0, description="the next N bodies are cut in half")
    expire_token_requests: int = Field(
        default=0, ge=0, description="the next N authorized requests find their token expired (401)"
    )
    duplicate_across_pages: bool = Field(
        default=False, description="each page repeats the previous one's last record"
    )
    move_during_paging: int = Field(
        default=0, ge=0, description="while paging, N records of the first page change and move to the end"
    )
    drift: Drift | None = Field(default=None, description="schema drift in every `drift_every`-th record")
    drift_every: int = Field(default=4, ge=1)
    only_resource: str | None = Field(
        default=None, description="limit the paging and drift knobs to this resource (e.g. attendance)"
    )

    def pages_faulty(self, resource: str) -> bool:
        return self.only_resource in (None, resource)

    def alters_pages(self, resource: str) -> bool:
        """Whether a page of RESOURCE is served other than as stored (repeated, moved, drifted)."""
        altering = self.duplicate_across_pages or self.move_during_paging or self.drift is not None
        return bool(altering) and self.pages_faulty(resource)


@dataclass
class Asked:
    path: str
    resource: str | None
    students: list[str] | None
    at: float
    data_from: str | None = None  # the first day of data asked for, where the request named one


@dataclass
class StandInState:
    """The mutable state of one stand-in: its knobs, the tokens it issued, what it was asked."""

    faults: Faults = field(default_factory=Faults)
    tokens: dict[str, float] = field(default_factory=dict)
    asked: list[Asked] = field(default_factory=list)
    token_ttl: float = 3600.0
    # Called with every data request as it arrives (in-process tests: "revoke while fetching").
    on_request: list[Callable[[Asked], None]] = field(default_factory=list)

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_ttl
        return token

    def token_valid(self, token: str) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and expires > time.monotonic()

    def take(self, knob: str) -> bool:
        """Fire a counting knob once if it is set."""
        remaining: int = getattr(self.faults, knob)
        if remaining <= 0:
            return False
        setattr(self.faults, knob, remaining - 1)
        return True

    def record(
        self, *, path: str, resource: str | None, students: list[str] | None, data_from: str | None = None
    ) -> None:
        asked = Asked(path=path, resource=resource, students=students, at=time.time(), data_from=data_from)
        self.asked.append(asked)
        del self.asked[:-10_000]
        for hook in self.on_request:
            hook(asked)


def control_router(state: StandInState) -> APIRouter:
    router = APIRouter(prefix="/_control", tags=["control"])

    @router.get("/faults")
    def get_faults() -> Faults:
        return state.faults

    @router.put("/faults")
    def set_faults(changes: dict[str, Any]) -> Faults:
        state.faults = Faults.model_validate({**state.faults.model_dump(), **changes})
        return state.faults

    @router.delete("/faults")
    def clear_faults() -> Faults:
        state.faults = Faults()
        return state.faults

    @router.get("/requests")
    def asked() -> list[dict[str, Any]]:
        return [a.__dict__ for a in state.asked]

    @router.delete("/requests")
    def forget() -> None:
        state.asked.clear()

    return router


def add_fault_middleware(app: FastAPI, state: StandInState, *, data_prefixes: tuple[str, ...]) -> None:
    """Latency, hangs, 429, 5xx, expired tokens and truncated bodies on the data endpoints."""

    @app.middleware("http")
    async def faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.url.path.startswith(data_prefixes):
            return await call_next(request)
        knobs = state.faults
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if state.take("hang_requests"):
            await asyncio.sleep(knobs.hang_seconds)
        if state.take("rate_limit_requests"):
            return JSONResponse(
                {"error": "rate_limited"},
                status_code=429,
                headers={"retry-after": str(knobs.retry_after_seconds)},
            )
        if state.take("server_error_requests"):
            return JSONResponse({"error": "unavailable"}, status_code=503)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not state.token_valid(token):
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        if state.take("expire_token_requests"):
            state.tokens.pop(token, None)
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        response = await call_next(request)
        if state.take("truncate_requests"):
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            return Response(
                body[: len(body) // 2], status_code=response.status_code, media_type="application/json"
            )
        return response


def drifted(
    record: dict[str, Any], index: int, faults: Faults, *, required: str, coded: str
) -> dict[str, Any]:
    """The record as a changed upstream schema would send it (every `drift_every`-th one)."""
    if faults.drift is None or index % faults.drift_every:
        return record
    changed = dict(record)
    if faults.drift == "unknown_field":
        changed["schemaVersionNote"] = "v2"
    elif faults.drift == "missing_field":
        changed.pop(required, None)
    else:
        changed[coded] = "ZZ"
    return changed


def json_response(payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json", headers=headers)
