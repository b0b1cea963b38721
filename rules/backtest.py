"""Measure the catalog: precision, recall and alert counts per rule, per category and per group,
against planted ground truth (the demo world's labels) and against staff outcomes.

Groups (school, grade, sex, transfer status, benefit status) are read only here, to see whether a
rule is wrong more often for some children (DOMAIN.md: Wisconsin DEWS); no rule can use them.
A child counts as a true case of a category when labelled with it and its onset is on or before
the as-of day. Staff outcomes: an alert dismissed as 対応不要 is a false positive; one that
reached a case meeting, support or monitoring is a confirmed one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlmodel import Session

from app.roster.models import Student
from consent.scopes import Scope
from rules.catalog import Catalog
from rules.compute import compute_features
from rules.engine import evaluate_children
from rules.evaluate import RuleResult
from rules.models import Alert, AlertStatus, Category, Signal

# The world's planted categories in screening's vocabulary; the others are measured as
# "not this category" (long-term illness is a useful trap for non-attendance rules).
LABEL_CATEGORIES: dict[str, Category | None] = {
    "school_non_attendance": Category.non_attendance,
    "non_attendance": Category.non_attendance,
    "economic_hardship": Category.economic_hardship,
    "young_carer": Category.young_carer,
    "bullying": Category.bullying,
    "abuse_neglect": Category.abuse_neglect,
    "wellbeing": Category.wellbeing,
    "long_term_illness": None,
    "healthy_control": None,
}
CONFIRMED = frozenset({AlertStatus.case_meeting, AlertStatus.support, AlertStatus.monitoring})
_BENEFITS = ("receives_child_rearing_allowance", "receives_public_assistance", "resident_tax_exempt")


@dataclass(frozen=True)
class Labels:
    truth: dict[Category, set[int]]  # children with signs by the as-of day
    later: dict[Category, set[int]]  # labelled, but the onset is after the as-of day
    labelled: int
    planted: dict[str, set[int]] = field(default_factory=dict)  # by the world's own label, onset passed

    def measured(self, category: Category) -> bool:
        """Whether the labels plant this category at all: if not, precision cannot be known."""
        return bool(self.truth.get(category) or self.later.get(category))


def load_labels(path: Path, *, as_of: date) -> Labels:
    document = json.loads(path.read_text(encoding="utf-8"))
    truth: dict[Category, set[int]] = defaultdict(set)
    later: dict[Category, set[int]] = defaultdict(set)
    planted: dict[str, set[int]] = defaultdict(set)
    entries = document["labels"] if isinstance(document, dict) else document
    for entry in entries:
        if entry["category"] not in LABEL_CATEGORIES:
            raise ValueError(f"unknown label category {entry['category']!r} in {path}")
        category = LABEL_CATEGORIES[entry["category"]]
        onset = entry.get("onset")
        shows = onset is None or date.fromisoformat(onset) <= as_of
        if shows:
            planted[entry["category"]].add(int(entry["student_id"]))
        if category is None:
            continue
        (truth if shows else later)[category].add(int(entry["student_id"]))
    return Labels(dict(truth), dict(later), len(entries), dict(planted))


def _score(fired: set[int], truth: set[int], measured: bool = True) -> dict[str, Any]:
    """Counts, precision and recall; without planted truth for the category only the count."""
    if not measured:
        return {"alerts": len(fired), "measured": False, "precision": None, "recall": None}
    hits = len(fired & truth)
    return {
        "alerts": len(fired),
        "true_positives": hits,
        "false_positives": len(fired) - hits,
        "missed": len(truth) - hits,
        "precision": round(hits / len(fired), 4) if fired else None,
        "recall": round(hits / len(truth), 4) if truth else None,
    }


def _planted_among(fired: set[int], labels: Labels) -> dict[str, int]:
    """How many of the children a rule flagged carry each planted label (or none): where its
    alerts really land, also for a category the labels do not plant."""
    found = {name: len(fired & ids) for name, ids in sorted(labels.planted.items()) if fired & ids}
    labelled = set().union(*labels.planted.values()) if labels.planted else set()
    return {**found, "none": len(fired - labelled)}


def _ids(mask: NDArray[np.bool_], student_ids: NDArray[np.int64]) -> set[int]:
    return set(student_ids[mask].tolist())


def _groups(
    session: Session, student_ids: NDArray[np.int64], benefit: NDArray[np.float64]
) -> dict[str, list[str]]:
    """Per child (aligned with student_ids): its value of each measuring group."""
    student: sa.Table = Student.__table__  # type: ignore[attr-defined]
    rows = {
        r.id: r
        for r in session.execute(
            sa.select(
                student.c.id, student.c.school_id, student.c.grade, student.c.sex, student.c.transferred_in
            )
        )
    }
    groups: dict[str, list[str]] = defaultdict(list)
    for index, sid in enumerate(student_ids.tolist()):
        row = rows[sid]
        groups["school"].append(str(row.school_id))
        groups["grade"].append(str(row.grade))
        groups["sex"].append(str(row.sex))
        groups["transfer"].append("transferred_in" if row.transferred_in else "from_start")
        value = benefit[index]
        groups["benefit"].append("unknown" if np.isnan(value) else "receiving" if value else "not_receiving")
    return groups


def run_backtest(
    *,
    session: Session,
    catalog: Catalog,
    as_of: date,
    labels: Labels,
    allowed: Mapping[int, Mapping[Scope, int]],
    timezone: str,
) -> dict[str, Any]:
    """Every rule (trial included) over the children consent allows, scored against LABELS."""
    evaluation = evaluate_children(
        session=session, catalog=catalog, as_of=as_of, allowed=allowed, timezone=timezone
    )
    table = evaluation.table
    ids = table.student_ids
    screened = set(ids.tolist())
    truth = {c: labels.truth.get(c, set()) & screened for c in Category}
    results: list[RuleResult] = evaluation.live + evaluation.trial
    rules_out: dict[str, Any] = {}
    for result in results:
        fired = _ids(result.fired, ids)
        rules_out[result.rule.id] = {
            "category": result.rule.category.value,
            "status": "live" if result in evaluation.live else "trial",
            "version": result.rule.version,
            **_score(fired, truth[result.rule.category], labels.measured(result.rule.category)),
            "planted_labels": _planted_among(fired, labels),
            "insufficient_data": int(result.insufficient.sum()),
            "not_consented": int(result.not_consented.sum()),
        }
    flags = compute_features(
        connection=session.connection(),
        as_of=as_of,
        features=_BENEFITS,
        student_ids=list(allowed),
        timezone=timezone,
    )
    receiving = np.fmax.reduce([flags.values[name] for name in _BENEFITS])  # NaN only when all unknown
    groups = _groups(session, ids, receiving)
    categories_out: dict[str, Any] = {}
    for category in Category:
        live = [r for r in evaluation.live if r.rule.category is category]
        if not live:
            continue
        mask = np.logical_or.reduce([r.fired for r in live])
        fired = _ids(mask, ids)
        measured = labels.measured(category)
        by_group: dict[str, dict[str, Any]] = {}
        for group, values in groups.items():
            column = np.array(values)
            by_group[group] = {
                value: {
                    "children": int((column == value).sum()),
                    **_score(
                        _ids(mask & (column == value), ids),
                        truth[category] & _ids(column == value, ids),
                        measured,
                    ),
                }
                for value in sorted(set(values))
            }
        categories_out[category.value] = {
            **_score(fired, truth[category], measured),
            "planted_labels": _planted_among(fired, labels),
            "labelled_later": len(labels.later.get(category, set()) & screened),
            "groups": by_group,
        }
    return {
        "as_of": as_of.isoformat(),
        "catalog_version": catalog.version,
        "children_screened": len(screened),
        "labels": labels.labelled,
        "rules": rules_out,
        "categories": categories_out,
        "staff_outcomes": staff_outcomes(session=session),
    }


def staff_outcomes(*, session: Session) -> dict[str, Any]:
    """What people decided about alerts: per rule and per category, dismissed vs confirmed."""
    alert: sa.Table = Alert.__table__  # type: ignore[attr-defined]
    signal: sa.Table = Signal.__table__  # type: ignore[attr-defined]

    def tally(key: str, status: str, counts: dict[str, dict[str, Any]]) -> None:
        entry = counts.setdefault(key, {"dismissed": 0, "confirmed": 0, "open": 0, "closed": 0})
        state = AlertStatus(status)
        if state is AlertStatus.dismissed:
            entry["dismissed"] += 1
        elif state in CONFIRMED:
            entry["confirmed"] += 1
        elif state is AlertStatus.closed:
            entry["closed"] += 1
        else:
            entry["open"] += 1

    by_category: dict[str, dict[str, Any]] = {}
    for row in session.execute(sa.select(alert.c.category, alert.c.status)):
        tally(row.category, row.status, by_category)
    by_rule: dict[str, dict[str, Any]] = {}
    for row in session.execute(
        sa.select(signal.c.rule_id, alert.c.status).join(alert, alert.c.id == signal.c.alert_id)
    ):
        tally(row.rule_id, row.status, by_rule)
    for counts in (*by_category.values(), *by_rule.values()):
        decided = counts["dismissed"] + counts["confirmed"]
        counts["staff_precision"] = round(counts["confirmed"] / decided, 4) if decided else None
    return {"categories": by_category, "rules": by_rule}
