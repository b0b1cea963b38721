"""Staff page of the latest backtest: per rule and category, precision, recall and alert counts,
with a small server-rendered SVG chart per rule, and the figures per group."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from app.core.deps import SessionDep
from app.core.errors import Forbidden
from app.roster.models import StaffRole
from app.staff.deps import CurrentStaff
from app.staff.web import render
from rules.models import CATEGORY_WORDING, Category, RunKind, RunStatus, ScreeningRun

router = APIRouter(prefix="/staff/screening", include_in_schema=False)


@router.get("/backtest", response_class=HTMLResponse)
def backtest_page(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """規則の検証結果 / The latest backtest: aggregate figures only, no child is named."""
    if not (current.rule.may_decide or current.staff.role is StaffRole.administrator):
        raise Forbidden(
            "この画面は判断を担う職員と管理者のためのものです。 / For deciding roles and administrators."
        )
    run = session.exec(
        select(ScreeningRun)
        .where(ScreeningRun.kind == RunKind.backtest, ScreeningRun.status == RunStatus.succeeded)
        .order_by(col(ScreeningRun.id).desc())
    ).first()
    return render(
        request,
        "screening/backtest.html",
        {
            "current": current,
            "run": run,
            "result": run.summary if run else None,
            "categories": {c.value: CATEGORY_WORDING[c] for c in Category},
        },
    )
