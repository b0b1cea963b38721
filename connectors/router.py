"""The operator's page of sync runs: counts, duration and errors, newest first."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.core.deps import SessionDep
from app.core.errors import Forbidden
from app.roster.models import StaffRole
from app.staff.deps import CurrentStaff
from app.web import TEMPLATE_DIRS
from connectors import service

router = APIRouter(prefix="/staff/ops", include_in_schema=False)
templates = Jinja2Templates(
    directory=[
        str(Path(__file__).parent / "templates"),
        str(Path(__file__).resolve().parents[1] / "app" / "staff" / "templates"),
        *map(str, TEMPLATE_DIRS),
    ]
)
# Operating the connectors is configuration work: it shows counts, never a child's data.
OPERATORS = {StaffRole.administrator, StaffRole.school_leader, StaffRole.case_worker}


@router.get("/sync", response_class=HTMLResponse)
def sync_runs(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """同期の記録 / Recent sync runs with their counts and errors."""
    if current.staff.role not in OPERATORS:
        raise Forbidden("この画面は運用担当者のみ利用できます。 / Operators only.")
    runs = service.recent_runs(session=session)
    response = templates.TemplateResponse(
        request, "connectors/sync_runs.html", {"current": current, "runs": runs}
    )
    response.headers["Cache-Control"] = "no-store"
    return response
