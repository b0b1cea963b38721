"""Liveness and readiness: is the process up, and can it serve (database reachable, schema at head)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from app.core.deps import EngineDep
from app.core.errors import ServiceUnavailable
from app.core.migrate import pending_reason

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


def check_readiness(engine: Engine) -> Readiness:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        reason = pending_reason(engine)
    except SQLAlchemyError as exc:
        # The driver's message names the host and the failure, never a password.
        detail = str(exc.orig if hasattr(exc, "orig") and exc.orig else exc).splitlines()[0]
        raise ServiceUnavailable(f"database unreachable: {detail}") from exc
    if reason:
        raise ServiceUnavailable(reason)
    return Readiness(status="ok", database=engine.dialect.name)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "not ready, with the reason"}},
)
def readyz(engine: EngineDep) -> Readiness:
    """The service can answer requests: the database is reachable and migrated to head."""
    return check_readiness(engine)
