"""The FastAPI application factory: routers of every domain, error handlers, request ids."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app import health
from app.core.config import get_settings
from app.core.db import session_scope
from app.core.handlers import add_exception_handlers
from app.core.logging import configure_logging
from app.core.request_context import RequestContext
from app.screening_pages import router as screening_router
from app.staff import deps as staff_deps
from app.staff.router import router as staff_router
from app.transparency import router as transparency_router
from app.web import templates
from connectors.router import guardian_router as myna_router
from connectors.router import router as connectors_router
from consent import deps as consent_deps
from consent.guardian import router as guardian_router
from consent.router import router as consent_router
from consent.router import token_route
from consent.staff_pages import router as consent_staff_router
from consent.student import router as student_router
from notify.directory import router as directory_router
from notify.notices import router as notices_router
from notify.router import router as notify_router


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="tsunagu つなぐ",
        version="0.1.0",
        description=(
            "本人同意に基づくこどもデータ連携。Consent-driven child data linkage for a "
            "municipality: early notice of children who may need support, and local support "
            "information for every family."
        ),
    )
    add_exception_handlers(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.state.unit_of_work = session_scope
    # Routes are matched in order, one by one: the token endpoint, the busiest, comes first.
    app.router.routes.append(token_route)
    app.include_router(health.router)
    app.include_router(consent_router)
    app.include_router(staff_router)
    app.include_router(connectors_router)
    app.include_router(myna_router)
    app.include_router(notify_router)
    app.include_router(directory_router)
    app.include_router(notices_router)
    staff_deps.install(app)
    app.include_router(guardian_router)
    app.include_router(consent_staff_router)
    app.include_router(student_router)
    app.include_router(transparency_router)
    app.include_router(screening_router)
    consent_deps.install(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "home.html", {"settings": settings})

    app.add_middleware(RequestContext)
    return app
