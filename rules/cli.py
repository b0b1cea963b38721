"""`tsunagu screen`: run screening, check the catalog, promote a trial rule, set review capacity."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from sqlmodel import col, select

from app.core.config import get_settings
from app.core.db import get_engine, session_scope
from app.core.errors import BadRequest, NotFound
from app.core.types import utcnow
from app.roster.models import Municipality, School, StaffRole
from app.staff import accounts as staff_accounts
from consent.scopes import Purpose
from rules import backtest, engine, queue
from rules.catalog import CatalogError, RuleStatus, live_catalog, load_catalog
from rules.models import RulePromotion, RunKind, RunStatus

console = Console(stderr=True)
screen_cli = typer.Typer(
    help="一次スクリーニング / Early-warning screening.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
)


def _organisation() -> str:
    """The municipality screening acts for, as the audit log names it."""
    with session_scope() as session:
        names = session.exec(select(Municipality.name).order_by(col(Municipality.id))).all()
    return names[0] if names else "municipality"


def _today() -> date:
    return datetime.now(ZoneInfo(get_settings().timezone)).date()


@screen_cli.callback()
def screen(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option(help="判定の基準日 / the day to screen for (YYYY-MM-DD; default today)")
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="前回から変わった児童生徒だけ / only the children whose data changed since the last run",
        ),
    ] = False,
) -> None:
    """同意のある児童生徒を判定する / Screen every child whose family consented (early_support)."""
    if ctx.invoked_subcommand is not None:
        return
    day = date.fromisoformat(as_of) if as_of else _today()
    catalog = live_catalog.get()
    if live_catalog.last_error is not None:
        console.print(f"[yellow]catalog refused, the last good one stays:\n{live_catalog.last_error.message}")
    engine_ = get_engine()
    try:
        outcome = engine.run_screening(
            units=lambda: session_scope(engine_),
            catalog=catalog,
            as_of=day,
            authorize_for=engine.consent_authorizer(_organisation()),
            incremental=incremental,
            timezone=get_settings().timezone,
        )
    except engine.ScreeningBusy as exc:
        console.print(f"[yellow]{exc}")
        raise typer.Exit(1) from exc
    typer.echo(json.dumps({**outcome.__dict__, "catalog": catalog.version}, default=str))


@screen_cli.command("check")
def check() -> None:
    """ルール一覧を検査する / Validate rules/catalog/*.yaml; list every problem with its line."""
    try:
        catalog = load_catalog()
    except CatalogError as exc:
        console.print(f"[red]{exc.message}")
        raise typer.Exit(1) from exc
    trial = sum(rule.status is RuleStatus.trial for rule in catalog.rules)
    typer.echo(f"catalog {catalog.version}: {len(catalog.rules)} rules ({trial} trial)")


@screen_cli.command("promote")
def promote(
    rule_id: Annotated[str, typer.Argument(help="試行中の規則 / the trial rule's id")],
    by: Annotated[str, typer.Option(help="管理者のログイン名 / administrator's login")],
    reason: Annotated[str, typer.Option(help="理由（検証結果など）/ why, e.g. the backtest")],
) -> None:
    """試行中の規則を職員に表示する / Let a trial rule (this version) reach staff."""
    catalog = load_catalog()
    rule = next((r for r in catalog.rules if r.id == rule_id), None)
    if rule is None:
        raise NotFound(f"no rule {rule_id!r} in the catalog")
    if rule.status is not RuleStatus.trial:
        raise BadRequest(f"{rule_id} is already live")
    with session_scope() as session:
        admin = staff_accounts.by_login(session=session, login=by)
        if admin is None or admin.role is not StaffRole.administrator or not admin.is_active:
            raise BadRequest(f"{by!r} is not an active administrator")
        promotion = session.get(RulePromotion, rule_id) or RulePromotion(
            rule_id=rule_id, rule_version=rule.version, reason=reason
        )
        promotion.rule_version, promotion.reason = rule.version, reason
        promotion.promoted_by_id, promotion.promoted_at = admin.id, utcnow()
        session.add(promotion)
    typer.echo(f"{rule_id} {rule.version} promoted")


@screen_cli.command("capacity")
def capacity(
    school_code: Annotated[str, typer.Argument(help="学校コード / school code")],
    weekly: Annotated[int, typer.Option(min=0, max=1000, help="週に確認できる件数 / alerts per week")],
    medium_share: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="線より下から抽出する割合 / share sampled below the line")
    ] = queue.DEFAULT_MEDIUM_SHARE,
) -> None:
    """学校の週あたり確認件数を設定する / Set a school's weekly review capacity."""
    with session_scope() as session:
        school = session.exec(select(School).where(School.code == school_code)).first()
        if school is None:
            raise NotFound(f"no school with code {school_code!r}")
        queue.set_capacity(
            session=session, school_id=school.id or 0, weekly_capacity=weekly, medium_share=medium_share
        )
    typer.echo(f"{school_code}: {weekly} per week, {medium_share:.0%} sampled below the line")


@screen_cli.command("backtest")
def backtest_command(
    labels: Annotated[
        Path, typer.Option(help="正解ラベル（デモの seed が書く JSON）/ ground-truth labels JSON")
    ],
    as_of: Annotated[str | None, typer.Option(help="基準日 / as-of day (YYYY-MM-DD; default today)")] = None,
    out: Annotated[Path, typer.Option(help="結果の出力先 / where to write the JSON results")] = Path(
        "var/backtest.json"
    ),
) -> None:
    """規則を検証する / Precision, recall and alert counts per rule, category and group."""
    day = date.fromisoformat(as_of) if as_of else _today()
    catalog = load_catalog()
    truth = backtest.load_labels(labels, as_of=day)
    with session_scope() as session:
        run = engine.start_run(session=session, catalog=catalog, as_of=day, kind=RunKind.backtest)
        scopes = {scope for rule in catalog.rules for scope in rule.scopes}
        allowed = engine.consent_authorizer(_organisation())(run.id or 0)(
            session=session, scopes=scopes, purpose=Purpose.early_support
        )
        result = backtest.run_backtest(
            session=session,
            catalog=catalog,
            as_of=day,
            labels=truth,
            allowed=allowed,
            timezone=get_settings().timezone,
        )
        run.status, run.finished_at, run.summary = RunStatus.succeeded, utcnow(), result
        run.children_screened = result["children_screened"]
        session.add(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for category, figures in result["categories"].items():
        typer.echo(
            f"{category:<18} alerts {figures['alerts']:>6}  precision {figures['precision']}  "
            f"recall {figures['recall']}"
        )
    typer.echo(f"wrote {out}")
