"""When consent stops, the evidence it allowed stops being shown or used.

A family that pauses or revokes a grant, a grant that expires, or a student's objection to early
support: every signal that read a category the child no longer shares is withdrawn (its values
are erased and it is marked cleared), an open alert's score drops to what is still shared, and
an open alert left with no evidence is closed with the reason in its history. This runs inside
the consent change itself (`consent.policy.on_grant_stopped`), and every screening run does it
again for the children it considers, which catches expiry and anything else that stopped
consent between runs; the run then evaluates nothing for what is not shared, so nothing comes back
while consent is absent. When consent returns, the next run screens the child as new.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import one_of
from app.core.types import utcnow
from consent import policy
from consent.scopes import Purpose, Scope
from rules.features import FEATURES
from rules.models import OPEN_STATUSES, Alert, AlertEvent, AlertEventKind, AlertStatus, Signal

CONSENT_STOPPED = "同意の停止により取り下げ / withdrawn: consent stopped"
WITHDRAWN = "withdrawn"  # an erased fact's `result`

_alert: sa.Table = Alert.__table__  # type: ignore[attr-defined]
_signal: sa.Table = Signal.__table__  # type: ignore[attr-defined]
_event: sa.Table = AlertEvent.__table__  # type: ignore[attr-defined]

Shared = Callable[[int], Collection[Scope]]


def _scopes(facts: list[dict[str, Any]]) -> set[Scope]:
    """The categories facts were read from; a feature this version does not know counts as
    every category (fail closed). A staff observation count reads none: it stands as long as
    the rule's data does (the catalog lets no rule fire on observations alone)."""
    scopes: set[Scope] = set()
    for fact in facts:
        feature = FEATURES.get(str(fact.get("feature")))
        if feature is None:
            scopes |= set(Scope)
        elif feature.scope is not None:
            scopes.add(feature.scope)
    return scopes


def is_withdrawn(atoms: list[dict[str, Any]]) -> bool:
    return bool(atoms) and all(fact.get("result") == WITHDRAWN for fact in atoms)


def _erase(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**fact, "value": None, "result": WITHDRAWN} for fact in facts]


def withdraw(
    *,
    session: Session,
    student_ids: Collection[int],
    shared: Shared,
    reason: str,
    run_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Withdraw the evidence of STUDENT_IDS that rests on categories no longer SHARED.

    Signals of every alert are erased (closed ones too: the values came from the data), open
    alerts are rescored, and those left with no evidence are closed. Returns counts."""
    now = now or utcnow()
    today = now.astimezone(ZoneInfo(get_settings().timezone)).date()
    counts = {"signals": 0, "alerts_rescored": 0, "alerts_closed": 0}
    ids = sorted(set(student_ids))
    rows = []
    for among in one_of(session.get_bind().dialect, _signal.c.student_id, ids):
        rows += list(
            session.execute(
                sa.select(_signal, _alert.c.status.label("alert_status"), _alert.c.score.label("alert_score"))
                .join(_alert, _alert.c.id == _signal.c.alert_id)
                .where(among)
                .order_by(_signal.c.id)
            ).mappings()
        )
    allowed: dict[int, set[Scope]] = {}
    by_alert: dict[int, list[sa.RowMapping]] = {}
    changed: dict[int, list[str]] = {}  # alert → rules withdrawn ("rule+": only a fact that added weight)
    gone: set[int] = set()  # signals withdrawn whole
    kept_weight: dict[int, float] = {}  # signals that lost a fact that added weight
    for row in rows:
        by_alert.setdefault(row["alert_id"], []).append(row)
        if is_withdrawn(row["atoms"]):
            continue
        if row["student_id"] not in allowed:
            allowed[row["student_id"]] = set(shared(row["student_id"]))
        shared_now = allowed[row["student_id"]]
        if _scopes(row["atoms"]) <= shared_now:
            # The rule still stands; a household or benefit fact that added weight may not.
            lost = [b for b in row["boosters"] if b.get("shared") and not _scopes([b]) <= shared_now]
            if not lost:
                continue
            boosters = [{**_erase([b])[0], "shared": False} if b in lost else b for b in row["boosters"]]
            weight = round(row["weight"] - sum(float(b.get("adds", 0)) for b in lost), 6)
            session.execute(
                sa.update(_signal)
                .where(_signal.c.id == row["id"])
                .values(boosters=boosters, weight=weight, said_digest=None)
            )
            changed.setdefault(row["alert_id"], []).append(f"{row['rule_id']}+")
            kept_weight[row["id"]] = weight
            counts["signals"] += 1
            continue
        session.execute(
            sa.update(_signal)
            .where(_signal.c.id == row["id"])
            .values(
                atoms=_erase(row["atoms"]),
                boosters=_erase(row["boosters"]),
                weight=0.0,
                said_digest=None,
                cleared_on=row["cleared_on"] or today,
            )
        )
        changed.setdefault(row["alert_id"], []).append(row["rule_id"])
        gone.add(row["id"])
        counts["signals"] += 1
    events: list[dict[str, Any]] = []
    for alert_id, rules in changed.items():
        signals = by_alert[alert_id]
        first = signals[0]
        if AlertStatus(first["alert_status"]) not in OPEN_STATUSES:
            continue
        remaining = [s for s in signals if s["id"] not in gone and s["cleared_on"] is None]
        score = round(sum(kept_weight.get(s["id"], s["weight"]) for s in remaining), 6)
        detail = {"withdrawn": sorted(rules), "score": [first["alert_score"], score]}
        base = {"alert_id": alert_id, "at": now, "run_id": run_id, "staff_user_id": None, "detail": detail}
        if remaining:
            session.execute(
                sa.update(_alert).where(_alert.c.id == alert_id).values(score=score, updated_at=now)
            )
            events.append({**base, "kind": AlertEventKind.evidence_changed.value, "reason": reason})
            counts["alerts_rescored"] += 1
            continue
        session.execute(
            sa.update(_alert)
            .where(_alert.c.id == alert_id)
            .values(
                status=AlertStatus.closed.value,
                score=0.0,
                closed_at=now,
                closed_reason=reason[:200],
                updated_at=now,
            )
        )
        events.append(
            {
                **base,
                "kind": AlertEventKind.status_changed.value,
                "from_status": first["alert_status"],
                "to_status": AlertStatus.closed.value,
                "reason": reason[:200],
            }
        )
        counts["alerts_closed"] += 1
    if events:
        session.execute(
            sa.insert(_event),
            [{"from_status": None, "to_status": None, **event} for event in events],
        )
    return counts


def shared_now(session: Session) -> Shared:
    """What each child's family shares for early support now (decided, not a read: no audit)."""

    def scopes(student_id: int) -> set[Scope]:
        return {
            scope
            for scope in Scope
            if policy.check(
                session=session, student_id=student_id, scope=scope, purpose=Purpose.early_support
            ).allowed
        }

    return scopes


@policy.on_grant_stopped
def _grant_stopped(session: Session, stopped: policy.StoppedGrant) -> None:
    """In the same transaction as the pause, revocation, expiry or objection."""
    if stopped.client_id is not None or Purpose.early_support not in stopped.purposes:
        return
    withdraw(
        session=session,
        student_ids=[stopped.student_id],
        shared=shared_now(session),
        reason=f"{CONSENT_STOPPED} ({stopped.status})",
        now=stopped.stopped_at,
    )
