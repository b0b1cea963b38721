"""A screening run: ask consent, compute features, evaluate the catalog, roll signals into alerts.

The run happens in three units of work so that a failure midway changes nothing people see:
1. the run row is written and consent is asked (its uses are audited) — committed;
2. features, signals and alerts are computed and written — committed only if all of it worked;
3. on failure, only the run row is marked failed, with the error.

Alerts are per child × category. A re-run on unchanged data writes nothing; a run that finds
new evidence updates the open alert in place (its signals are refreshed, not duplicated), and
only then: window dates and rates that moved by days passing alone rewrite nothing (`says`);
when no rule fires any more the evidence is cleared, but the status stays where people put it.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlmodel import Session, select

from app.core import bulk
from app.core.collector import fewer_collections
from app.core.db import beside_database, ids_in, joined_ids, one_of, one_of_or_all
from app.core.types import utcnow
from consent import policy
from consent.scopes import Purpose, Scope
from rules import incremental as changed
from rules import withdraw
from rules.catalog import Atom, Booster, Catalog, Op, Rule, RuleStatus
from rules.compute import FeatureTable, Period, compute_features, finished_terms, seen_alike_apart
from rules.evaluate import RuleResult, booster_weights, consent_masks, evaluate
from rules.features import FEATURES, ValueType
from rules.models import (
    OPEN_STATUSES,
    QUIET_DAYS,
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    Category,
    RulePromotion,
    RunKind,
    RunStatus,
    ScreeningRun,
    Signal,
)

log = logging.getLogger("tsunagu.screening")

T = TypeVar("T")

_alert: sa.Table = Alert.__table__  # type: ignore[attr-defined]
_signal: sa.Table = Signal.__table__  # type: ignore[attr-defined]
_event: sa.Table = AlertEvent.__table__  # type: ignore[attr-defined]
_run: sa.Table = ScreeningRun.__table__  # type: ignore[attr-defined]


class Authorizer(Protocol):
    """`consent.policy.authorize_many` with the actor bound: child → allowed scope → grant id."""

    def __call__(
        self,
        *,
        session: Session,
        scopes: Collection[Scope],
        purpose: Purpose,
        student_ids: Collection[int] | None = None,
        at: datetime | None = None,
    ) -> dict[int, dict[Scope, int]]: ...


Units = Callable[[], AbstractContextManager[Session]]


# --- what the engine decided, before writing ---------------------------------------------------


@dataclass
class Finding:
    """A live rule firing for a child, with the facts to show."""

    rule: Rule
    weight: float
    atoms: list[dict[str, Any]]
    boosters: list[dict[str, Any]]

    @cached_property
    def said_digest(self) -> str:
        return said_digest(self.atoms, self.boosters, self.weight)


@dataclass
class Verdict:
    """One child × category after evaluation."""

    student_id: int
    school_id: int
    category: Category
    findings: list[Finding] = field(default_factory=list)
    insufficient: list[str] = field(default_factory=list)
    not_consented: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(sum(f.weight for f in self.findings), 6)

    @property
    def coverage(self) -> dict[str, list[str]]:
        return {
            "insufficient_data": sorted(self.insufficient),
            "not_consented": sorted(self.not_consented),
        }


def live_rules(*, session: Session, catalog: Catalog) -> tuple[list[Rule], list[Rule]]:
    """(rules that reach staff, trial rules): a trial rule is live once this exact version was
    promoted by an administrator."""
    promoted = {(p.rule_id, p.rule_version) for p in session.exec(select(RulePromotion))}
    live, trial = [], []
    for rule in catalog.rules:
        if rule.status is RuleStatus.live or (rule.id, rule.version) in promoted:
            live.append(rule)
        else:
            trial.append(rule)
    return live, trial


_HOLDS: dict[Op, Callable[[Any, float], Any]] = {  # on numpy arrays, element-wise
    Op.ge: operator.ge,
    Op.gt: operator.gt,
    Op.le: operator.le,
    Op.lt: operator.lt,
    Op.eq: operator.eq,
    Op.ne: operator.ne,
}


def _fact_frame(atom: Atom, period: Period) -> dict[str, Any]:
    """What a fact says that is the same for every child (made once per atom and run: a city
    run writes a hundred thousand facts). The value and result come in their places after."""
    window = atom.feature.window
    start: date | None = period.start(window) if window else None
    if atom.feature.name.startswith("grade_"):
        terms = finished_terms(period.as_of)
        start = None
        window_text = "、".join(f"{y}年度{t}学期" for y, t in terms)
    else:
        window_text = window.value if window else ""
    return {
        "name": atom.name,
        "feature": atom.feature.name,
        "op": atom.op.value,
        "threshold": atom.threshold,
        "value": None,
        "result": None,
        "window": window_text,
        "window_start": start.isoformat() if start else None,
        "window_end": period.as_of.isoformat() if window else None,
    }


def _facts(
    atom: Atom, table: FeatureTable, indices: NDArray[np.intp], period: Period
) -> list[dict[str, Any]]:
    """The atom's fact for each child at INDICES, made column-wise: the comparison is the
    three-valued one of rules.evaluate.atom_truth, done once for all of them (a city run makes a
    hundred thousand facts, and per child the numpy scalars and enum look-ups were most of it)."""
    frame = _fact_frame(atom, period)
    values = table.values[atom.feature.name][indices]
    holds = _HOLDS[atom.op](values, float(atom.threshold))  # NaN (unknown) compares false
    results = np.where(np.isnan(values), "unknown", np.where(holds, "true", "false")).tolist()
    return [
        {**frame, "value": None if result == "unknown" else value, "result": result}
        for value, result in zip(values.tolist(), results, strict=True)
    ]


def _boosters(
    booster: Booster,
    table: FeatureTable,
    indices: NDArray[np.intp],
    period: Period,
    granted: Mapping[Scope, Any],
) -> list[dict[str, Any]]:
    """A status fact beside a rule, for each child at INDICES: its value only where the family
    shared it."""
    scope = booster.atom.feature.scope
    # A staff record counts for every child screened.
    shared = (
        [True] * len(indices) if scope is None else np.asarray(granted[scope])[indices].astype(bool).tolist()
    )
    return [
        {**fact, "adds": booster.weight, "shared": True}
        if given
        else {**fact, "value": None, "result": "not_consented", "adds": booster.weight, "shared": False}
        for fact, given in zip(_facts(booster.atom, table, indices, period), shared, strict=True)
    ]


def verdicts(
    *,
    results: list[RuleResult],
    table: FeatureTable,
    granted: Mapping[Scope, Any],
    period: Period,
) -> dict[tuple[int, Category], Verdict]:
    """Every child × category where a live rule fired, with its findings and coverage."""
    found: dict[tuple[int, Category], Verdict] = {}
    by_category: dict[Category, list[RuleResult]] = defaultdict(list)
    for result in results:
        by_category[result.rule.category].append(result)
    for category, category_results in by_category.items():
        fired_any = np.zeros(len(table.student_ids), dtype=np.bool_)
        for result in category_results:
            fired_any |= result.fired
        for index in np.flatnonzero(fired_any):
            found[(int(table.student_ids[index]), category)] = Verdict(
                student_id=int(table.student_ids[index]),
                school_id=int(table.school_ids[index]),
                category=category,
            )
        for result in category_results:
            rule = result.rule
            fired = np.flatnonzero(result.fired)
            weights = (rule.weight + booster_weights(result, table, granted)[fired]).tolist()
            atoms = [_facts(atom, table, fired, period) for atom in rule.atoms]
            boosters = [_boosters(b, table, fired, period, granted) for b in rule.boosters]
            for i, student_id in enumerate(table.student_ids[fired].tolist()):
                found[(student_id, category)].findings.append(
                    Finding(
                        rule=rule,
                        weight=round(weights[i], 6),
                        atoms=[column[i] for column in atoms],
                        boosters=[column[i] for column in boosters],
                    )
                )
            for index in np.flatnonzero(fired_any & (result.insufficient | result.not_consented)):
                verdict = found[(int(table.student_ids[index]), category)]
                bucket = verdict.insufficient if result.insufficient[index] else verdict.not_consented
                bucket.append(result.rule.id)
    return found


def coverage_for(
    results: list[RuleResult], table: FeatureTable
) -> dict[tuple[int, Category], dict[str, list[str]]]:
    """For every child × category: the live rules that could not be judged (for open alerts
    whose rules stopped firing, so people still see what could not be checked)."""
    coverage: dict[tuple[int, Category], dict[str, list[str]]] = {}
    for result in results:
        for name, mask in (
            ("insufficient_data", result.insufficient),
            ("not_consented", result.not_consented),
        ):
            for index in np.flatnonzero(mask):
                key = (int(table.student_ids[index]), result.rule.category)
                entry = coverage.setdefault(key, {"insufficient_data": [], "not_consented": []})
                entry[name].append(result.rule.id)
    for entry in coverage.values():
        for ids in entry.values():
            ids.sort()
    return coverage


def summarise(results: list[RuleResult]) -> dict[str, Any]:
    return {
        result.rule.id: {
            "category": result.rule.category.value,
            "status": result.rule.status.value,
            "version": result.rule.version,
            "fired": int(result.fired.sum()),
            "insufficient_data": int(result.insufficient.sum()),
            "not_consented": int(result.not_consented.sum()),
        }
        for result in results
    }


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    table: FeatureTable
    live: list[RuleResult]
    trial: list[RuleResult]
    granted: dict[Scope, Any]
    period: Period
    allowed: Mapping[int, Mapping[Scope, int]]


def evaluate_children(
    *,
    session: Session,
    catalog: Catalog,
    as_of: date,
    allowed: Mapping[int, Mapping[Scope, int]],
    timezone: str,
) -> Evaluation:
    """Features and rule outcomes for the allowed children (both live and trial rules)."""
    live, trial = live_rules(session=session, catalog=catalog)
    table = compute_features(
        connection=session.connection(),
        as_of=as_of,
        features=catalog.features(),
        student_ids=list(allowed),
        granted={scope: [sid for sid, given in allowed.items() if scope in given] for scope in Scope},
        timezone=timezone,
    )
    scopes = {scope for rule in catalog.rules for scope in rule.scopes}
    granted = consent_masks(table, allowed, scopes)
    return Evaluation(
        table=table,
        live=evaluate(live, table, granted),
        trial=evaluate(trial, table, granted),
        granted=granted,
        period=Period(as_of=as_of, tz=ZoneInfo(timezone)),
        allowed=allowed,
    )


def start_run(*, session: Session, catalog: Catalog, as_of: date, kind: RunKind) -> ScreeningRun:
    run = ScreeningRun(kind=kind, as_of=as_of, catalog_version=catalog.version)
    session.add(run)
    session.flush()
    return run


@dataclass
class Standing:
    """The alerts of the children a run considers, as they stand before it writes: the open
    alerts (child × category), their signals (alert → rule), and which children have signals
    of each rule version (for the withdrawal check). Read by `read_standing`, on a connection
    of its own while consent and the features are asked (`run_screening`)."""

    open_alerts: dict[tuple[int, Category], sa.RowMapping]
    signals: dict[int, dict[str, sa.RowMapping]]
    signalled: list[tuple[str, str, set[int]]]

    def with_children(self, children: Collection[int], fresh: Standing) -> Standing:
        """This standing with CHILDREN's alerts as FRESH (read again) has them."""
        again = set(children)
        kept = {key: alert for key, alert in self.open_alerts.items() if key[0] not in again}
        signals = {alert["id"]: self.signals[alert["id"]] for alert in kept.values()}
        return Standing({**kept, **fresh.open_alerts}, {**signals, **fresh.signals}, self.signalled)


def read_standing(connection: sa.Connection, children: Collection[int] | None) -> Standing:
    """The standing of CHILDREN (every child when None)."""
    ids = None if children is None else sorted(set(children))

    def among(column: sa.ColumnElement[int]) -> list[sa.ColumnElement[bool]]:
        return one_of_or_all(connection.dialect, column, ids)

    c = _alert.c
    opened = sa.select(c.id, c.student_id, c.category, c.score, c.coverage).where(
        c.status.in_([s.value for s in OPEN_STATUSES])
    )
    open_alerts = {
        (a["student_id"], Category(a["category"])): a
        for only in among(c.student_id)
        for a in connection.execute(opened.where(only)).mappings()
    }
    signals: dict[int, dict[str, sa.RowMapping]] = {alert["id"]: {} for alert in open_alerts.values()}
    for only in one_of(connection.dialect, _signal.c.alert_id, sorted(signals)):
        for signal in connection.execute(sa.select(*_SIGNAL_READ).where(only)).mappings():
            signals[signal["alert_id"]][signal["rule_id"]] = signal
    # The children of each rule version, as one text each (`joined_ids`), not a row per signal.
    versions = sa.select(
        _signal.c.rule_id, _signal.c.rule_version, joined_ids(_signal.c.student_id)
    ).group_by(_signal.c.rule_id, _signal.c.rule_version)
    signalled = [
        (rule_id, version, set(ids_in(joined)))
        for only in among(_signal.c.student_id)
        for rule_id, version, joined in connection.execute(versions.where(only)).all()
    ]
    return Standing(open_alerts, signals, signalled)


def apply(
    *,
    session: Session,
    run: ScreeningRun,
    evaluation: Evaluation,
    considered: Collection[int] | None = None,
    standing: Standing | None = None,
    now: datetime | None = None,
) -> ScreeningRun:
    """Write what the evaluation found: open, refresh or clear alerts and their signals.

    STANDING is the CONSIDERED children's (everyone by default) alerts before the run, read
    here unless given. First, the evidence of those children that rests on what their
    families no longer share is withdrawn (`rules.withdraw`)."""
    now = now or utcnow()
    run_id = run.id or 0
    connection = session.connection()
    if standing is None:
        standing = read_standing(connection, considered)
    unshared = _may_rest_on_unshared(evaluation, standing.signalled)
    withdrawn = withdraw.withdraw(
        session=session,
        student_ids=unshared,
        shared=lambda student_id: evaluation.allowed.get(student_id, {}).keys(),
        reason=f"{withdraw.CONSENT_STOPPED} (run {run_id})",
        run_id=run_id,
        now=now,
    )
    if withdrawn["signals"]:
        # Those children's alerts as the withdrawal left them.
        standing = standing.with_children(unshared, read_standing(connection, unshared))
    found = verdicts(
        results=evaluation.live,
        table=evaluation.table,
        granted=evaluation.granted,
        period=evaluation.period,
    )
    coverage = coverage_for(evaluation.live, evaluation.table)
    screened = set(evaluation.table.student_ids.tolist())
    as_of = run.as_of
    # The standing covers the children considered; those no longer screened (consent stopped)
    # were the withdrawal's business above.
    open_alerts = {key: alert for key, alert in standing.open_alerts.items() if key[0] in screened}
    signals_by_alert = standing.signals
    recently_closed: dict[tuple[int, Category], float] = {}
    quiet_since = now - timedelta(days=QUIET_DAYS)
    for row in session.execute(
        sa.select(_alert.c.student_id, _alert.c.category, _alert.c.score).where(
            _alert.c.status.in_([AlertStatus.closed.value, AlertStatus.dismissed.value]),
            _alert.c.closed_at >= quiet_since,
            # Closed because consent stopped: when it returns, the child is screened as new.
            sa.func.coalesce(_alert.c.closed_reason, "").not_like(f"{withdraw.CONSENT_STOPPED}%"),
        )
    ):
        key = (row.student_id, Category(row.category))
        recently_closed[key] = max(recently_closed.get(key, 0.0), row.score)

    counts = {"opened": 0, "updated": 0, "cleared": 0, "signals": 0}
    signal_inserts: list[dict[str, Any]] = []
    event_inserts: list[dict[str, Any]] = []
    new_alerts: list[Verdict] = []
    refreshing: list[tuple[sa.RowMapping, Verdict]] = []
    for key, verdict in found.items():
        existing = open_alerts.get(key)
        if existing is not None:
            refreshing.append((existing, verdict))
        elif key not in recently_closed or verdict.score > recently_closed[key]:
            new_alerts.append(verdict)

    with _Sender(session) as sender:
        # The new alerts go first, so their ids are back by the time their signals are made.
        opening = sender.send(
            lambda unit: _insert_returning_ids(unit, _alert, _alert_rows(new_alerts, run_id, as_of, now))
        )
        # Compared a slice at a time, each slice's updates sent while the next is compared.
        for start in range(0, len(refreshing), _SLICE):
            writes = _Writes()
            for existing, verdict in refreshing[start : start + _SLICE]:
                counts["updated"] += _refresh(
                    alert=existing,
                    verdict=verdict,
                    signals=signals_by_alert[existing["id"]],
                    run_id=run_id,
                    as_of=as_of,
                    now=now,
                    signal_inserts=signal_inserts,
                    event_inserts=event_inserts,
                    writes=writes,
                )
            sender.send(writes.flush(now))

        writes = _Writes()
        for key, alert in open_alerts.items():
            if key in found or alert["score"] == 0:
                continue
            cover = coverage.get(key, {"insufficient_data": [], "not_consented": []})
            writes.alerts.append(
                {
                    "_id": alert["id"],
                    "score": 0.0,
                    "coverage": cover,
                    "last_run_id": run_id,
                    "evidence_as_of": as_of,
                }
            )
            for signal in signals_by_alert[alert["id"]].values():
                if signal["cleared_on"] is None:
                    writes.cleared.append({"_id": signal["id"], "cleared_on": as_of, "last_run_id": run_id})
            event_inserts.append(
                _event_row(alert["id"], AlertEventKind.evidence_cleared, run_id, now, {"coverage": cover})
            )
            counts["cleared"] += 1
        sender.send(writes.flush(now))

        for alert_id, verdict in zip(opening.result(), new_alerts, strict=True):
            signal_inserts += [
                _signal_row(alert_id, verdict.student_id, f, run_id, as_of) for f in verdict.findings
            ]
            event_inserts.append(
                _event_row(
                    alert_id,
                    AlertEventKind.opened,
                    run_id,
                    now,
                    {"score": verdict.score, "rules": [f.rule.id for f in verdict.findings]},
                    to_status=AlertStatus.new,
                )
            )
        counts["opened"] = len(new_alerts)
        counts["signals"] = len(signal_inserts)
        sender.send(lambda unit: _insert_many(unit, _signal, signal_inserts))
        sender.send(lambda unit: _insert_many(unit, _event, event_inserts))

    run.status = RunStatus.succeeded
    run.finished_at = utcnow()
    run.children_screened = len(screened)
    run.alerts_opened = counts["opened"]
    run.alerts_updated = counts["updated"]
    run.alerts_cleared = counts["cleared"]
    run.signals_written = counts["signals"]
    run.summary = {
        **run.summary,
        "withdrawn": withdrawn,
        "rules": summarise(evaluation.live + evaluation.trial),
        "children": len(screened),
    }
    session.add(run)
    session.flush()
    return run


def _may_rest_on_unshared(evaluation: Evaluation, signalled: list[tuple[str, str, set[int]]]) -> set[int]:
    """The children with a signal that may read a category their family does not share now, for
    `rules.withdraw` to check fact by fact, from SIGNALLED (each rule version's children with
    signals). A signal of the catalog's own version of a rule reads the categories of that
    rule's features; a signal of another version or of a rule no longer in the catalog may read
    anything. Reading only these rows, not every signal's facts, spares a city-wide run most of
    that check."""
    reads: dict[tuple[str, str], frozenset[Scope]] = {}
    for result in evaluation.live + evaluation.trial:
        rule = result.rule
        features = [*(a.feature for a in rule.atoms), *(b.atom.feature for b in rule.boosters)]
        reads[(rule.id, rule.version)] = frozenset(f.scope for f in features if f.scope is not None)
    every = frozenset(Scope)
    allowed = evaluation.allowed
    found: set[int] = set()
    for rule_id, version, children in signalled:
        needs = reads.get((rule_id, version), every)
        found.update(student_id for student_id in children if not needs <= allowed.get(student_id, {}).keys())
    return found


def _refresh(
    *,
    alert: sa.RowMapping,
    verdict: Verdict,
    signals: Mapping[str, sa.RowMapping],
    run_id: int,
    as_of: date,
    now: datetime,
    signal_inserts: list[dict[str, Any]],
    event_inserts: list[dict[str, Any]],
    writes: _Writes,
) -> bool:
    """Bring an open alert's evidence up to date; True when anything changed."""
    firing = {f.rule.id: f for f in verdict.findings}
    started = sorted(
        rule_id for rule_id in firing if rule_id not in signals or signals[rule_id]["cleared_on"] is not None
    )
    stopped = sorted(
        rule_id for rule_id, s in signals.items() if rule_id not in firing and s["cleared_on"] is None
    )
    moved = [
        rule_id
        for rule_id, finding in firing.items()
        if rule_id in signals
        and signals[rule_id]["cleared_on"] is None
        and signals[rule_id]["said_digest"] != finding.said_digest
    ]
    score_changed = alert["score"] != verdict.score
    coverage_changed = alert["coverage"] != verdict.coverage
    if not (started or stopped or moved or score_changed or coverage_changed):
        return False
    for rule_id in started:
        finding = firing[rule_id]
        if rule_id in signals:  # fired before, cleared, fires again: the same row comes back
            writes.signals.append(
                {"_id": signals[rule_id]["id"], **_signal_values(finding, run_id, as_of), "cleared_on": None}
            )
        else:
            signal_inserts.append(_signal_row(alert["id"], verdict.student_id, finding, run_id, as_of))
    for rule_id in moved:
        writes.signals.append(
            {
                "_id": signals[rule_id]["id"],
                **_signal_values(firing[rule_id], run_id, as_of),
                "cleared_on": None,
            }
        )
    for rule_id in stopped:
        signal = signals[rule_id]
        writes.cleared.append({"_id": signal["id"], "cleared_on": as_of, "last_run_id": run_id})
    writes.alerts.append(
        {
            "_id": alert["id"],
            "score": verdict.score,
            "coverage": verdict.coverage,
            "last_run_id": run_id,
            "evidence_as_of": as_of,
        }
    )
    if started or stopped or score_changed:
        event_inserts.append(
            _event_row(
                alert["id"],
                AlertEventKind.evidence_changed,
                run_id,
                now,
                {
                    "score": [alert["score"], verdict.score],
                    "started": started,
                    "stopped": stopped,
                },
            )
        )
    return True


_UNSAID = ("window_start", "window_end")
_UNSAID_OF_A_RATE = (*_UNSAID, "value")
_RATES = frozenset(name for name, feature in FEATURES.items() if feature.value_type is ValueType.rate)


def says(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What facts say, without what moves by itself as days pass: the window's dates, and a
    rate's value (its days grow every school day). A signal is rewritten when this changes,
    not every day: its facts stay those of the run that last changed it (`last_seen_on`, the
    alert's `evidence_as_of`), which the staff page shows beside them; a count, a result, a
    weight or a rule starting or stopping always rewrites it, with every value refreshed."""
    said = []
    for fact in facts:
        # A copy with the few keys popped: a comprehension over every key was most of the
        # comparison of an incremental run's ten thousand refreshed alerts.
        told = fact.copy()
        for key in _UNSAID_OF_A_RATE if fact.get("feature") in _RATES else _UNSAID:
            told.pop(key, None)
        said.append(told)
    return said


def said_digest(atoms: list[dict[str, Any]], boosters: list[dict[str, Any]], weight: float) -> str:
    """A digest of what a signal says (`says`) and its weight, stored beside its facts: a run
    compares digests, and reads no open signal's facts (decoding them was 0.45 s of an
    incremental run at 250,000 children, comparing them 0.2 s more)."""
    text = orjson.dumps(
        [says(atoms), says(boosters), weight], option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
    )
    return hashlib.blake2b(text, digest_size=16).hexdigest()


# What apply() reads of an open alert's signals: not the run and day columns it only writes.
_SIGNAL_READ = tuple(_signal.c[name] for name in ("id", "alert_id", "rule_id", "said_digest", "cleared_on"))
_SIGNAL_VALUES = ("rule_version", "weight", "atoms", "boosters", "said_digest", "last_run_id", "last_seen_on")


@dataclass
class _Writes:
    """Updates of alerts and signals, sent in batches (one statement, many rows) rather than one
    round trip per row: a run that refreshes tens of thousands of alerts spent most of its time
    there."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    # Signals that stopped: their facts stay as the run that last saw them left them, so only
    # these two columns are sent (not their facts again, as JSON).
    cleared: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, now: datetime) -> Callable[[Session], None]:
        """The writing of these updates, for a `_Sender`."""

        def write(session: Session) -> None:
            alert_columns = ("score", "coverage", "last_run_id", "evidence_as_of")
            _update_many(session, _alert, alert_columns, self.alerts, also={"updated_at": now})
            _update_many(session, _signal, (*_SIGNAL_VALUES, "cleared_on"), self.signals)
            _update_many(session, _signal, ("cleared_on", "last_run_id"), self.cleared)

        return write


_SLICE = 4_000
"""Open alerts compared before their updates are sent (an incremental run at 250,000 children
compares 14,000)."""


class _Sender:
    """Writes made on the run's own session by a thread of its own, in the order sent, while the
    caller goes on comparing verdicts: the database and Python took turns, each idle while the
    other worked (a third of an incremental run was apply(), half of it waiting on writes).

    The caller does not touch the session until the block ends; leaving it waits for every
    write, so a failed write is raised there (and the unit of work rolls back everything) and
    nothing is still writing when it does.

    PostgreSQL only. SQLite works in this process, so there is no idle server to keep busy, and
    an in-memory database's connection may not be used from another thread: there each write is
    made when it is sent."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="screening-writes")
            if session.get_bind().dialect.name == "postgresql"
            else None
        )
        self._sent: list[Future[Any]] = []

    def send(self, write: Callable[[Session], T]) -> Future[T]:
        if self._pool is None:
            done: Future[T] = Future()
            done.set_result(write(self._session))  # a failure is raised here, at once
            return done
        future = self._pool.submit(write, self._session)
        self._sent.append(future)
        return future

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for future in self._sent:
            future.result()


def _update_many(
    session: Session,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    also: Mapping[str, Any] | None = None,
) -> None:
    """Set COLUMNS (and ALSO, the same for every row) of the rows whose id is each row's "_id".

    PostgreSQL: the rows are copied into a temporary table and one UPDATE … FROM joins it: an
    executemany sent a statement per row (0.6 s for the 2,500 rows of an incremental run at
    20,000 children). SQLite: the driver's executemany of one statement, each value made as its
    column's type makes it (`bind_processor`): through SQLAlchemy, building each row's
    parameters took twice as long as SQLite took to apply them (0.4 s of an incremental run's
    46,000 updates at 250,000 children)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        statement = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("_id"))
            .values({name: sa.bindparam(name) for name in (*columns, *(also or {}))})
        )
        bulk.execute_many(connection, statement, table, rows, also)
        return
    staged = sa.Table(
        f"staged_{table.name}_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column("_id", sa.Integer, primary_key=True),
        *[sa.Column(c, table.c[c].type) for c in columns],
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    staged.create(connection)
    names = ("_id", *columns)
    bulk.copy(connection, staged, {name: [row[name] for row in rows] for name in names}, len(rows))
    connection.execute(
        sa.update(table)
        .where(table.c.id == staged.c["_id"])
        .values({**{c: staged.c[c] for c in columns}, **(also or {})})
    )
    staged.drop(connection)


def _alert_rows(new: list[Verdict], run_id: int, as_of: date, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "student_id": v.student_id,
            "school_id": v.school_id,
            "category": v.category.value,
            "status": AlertStatus.new.value,
            "score": v.score,
            "opened_at": now,
            "updated_at": now,
            "opened_run_id": run_id,
            "last_run_id": run_id,
            "evidence_as_of": as_of,
            "coverage": v.coverage,
        }
        for v in new
    ]


def _signal_values(finding: Finding, run_id: int, as_of: date) -> dict[str, Any]:
    return {
        "rule_version": finding.rule.version,
        "weight": finding.weight,
        "atoms": finding.atoms,
        "boosters": finding.boosters,
        "said_digest": finding.said_digest,
        "last_run_id": run_id,
        "last_seen_on": as_of,
    }


def _signal_row(alert_id: int, student_id: int, finding: Finding, run_id: int, as_of: date) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "student_id": student_id,
        "rule_id": finding.rule.id,
        "first_run_id": run_id,
        "first_seen_on": as_of,
        "cleared_on": None,
        **_signal_values(finding, run_id, as_of),
    }


def _event_row(
    alert_id: int,
    kind: AlertEventKind,
    run_id: int,
    at: datetime,
    detail: dict[str, Any],
    to_status: AlertStatus | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "at": at,
        "kind": kind.value,
        "from_status": None,
        "to_status": to_status.value if to_status else None,
        "run_id": run_id,
        "staff_user_id": None,
        "reason": None,
        "detail": detail,
    }


def _insert_many(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ROWS (dicts with the same keys): by COPY on PostgreSQL, where an executemany of a
    city's first run (tens of thousands of signals and events) took seconds."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        bulk.copy(connection, table, {name: [row[name] for row in rows] for name in rows[0]}, len(rows))
        return
    bulk.execute_many(connection, bulk.insert_statement(table, rows[0]), table, rows)


def _insert_returning_ids(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ROWS and return their new ids, in order. PostgreSQL: the ids are drawn from the
    table's sequence first and the rows copied with them (see `_insert_many`)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        ids: list[int] = []
        for start in range(0, len(rows), 5_000):
            ids += session.execute(
                sa.insert(table).returning(table.c.id, sort_by_parameter_order=True),
                rows[start : start + 5_000],
            ).scalars()
        return ids
    drawn = sa.func.nextval(sa.func.pg_get_serial_sequence(table.name, "id"))
    ids = sorted(
        connection.execute(sa.select(drawn).select_from(sa.func.generate_series(1, len(rows)))).scalars()
    )
    _insert_many(session, table, [{"id": new_id, **row} for new_id, row in zip(ids, rows, strict=True)])
    return ids


# --- orchestration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    kind: RunKind
    status: RunStatus
    children: int
    opened: int
    updated: int
    cleared: int
    signals: int
    seconds: float
    error: str | None = None


def _may_be_incremental(session: Session, catalog: Catalog, as_of: date, last: sa.Row[Any]) -> bool:
    """Only the same catalog, with no promotion since, within a term and a week of the last run."""
    promoted_since = session.execute(
        sa.select(sa.func.count())
        .select_from(RulePromotion)
        .where(RulePromotion.promoted_at >= last.started_at)
    ).scalar_one()
    return (
        "sync_watermark" in (last.summary or {})
        and last.catalog_version == catalog.version
        and not promoted_since
        and not changed.needs_full_run(as_of, last.as_of)
    )


class ScreeningBusy(RuntimeError):
    """Another screening run is under way: this one did not start."""

    def __init__(self) -> None:
        super().__init__(
            "別のスクリーニングが実行中です。終わってから実行してください / "
            "another screening run is under way: run this one when it has finished"
        )


_ONE_RUN_KEY = 0x7473_756E_6167_7531
"""The PostgreSQL advisory lock that screening runs take (the bytes of "tsunagu1")."""


@contextmanager
def one_run_at_a_time(bind: sa.Engine | sa.Connection) -> Iterator[None]:
    """Hold the screening lock for the block, or raise ScreeningBusy at once. Two runs at once
    compared the same alerts, and one of them failed on the open-alert index after all its
    work. PostgreSQL: a session advisory lock on a connection of its own (released if the
    process dies). SQLite, whose write lock lasts one transaction and a run has three: a lock
    on a file beside the database (`app.core.db.beside_database`, released if the process
    dies). An in-memory database has one process, and one run."""
    engine = bind.engine if isinstance(bind, sa.Connection) else bind
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            taken = connection.execute(sa.select(sa.func.pg_try_advisory_lock(_ONE_RUN_KEY))).scalar()
            connection.commit()  # the lock outlives the transaction; no snapshot is held
            if not taken:
                raise ScreeningBusy
            try:
                yield
            finally:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(_ONE_RUN_KEY)))
                connection.commit()
        return
    database = engine.url.database
    if database in (None, "", ":memory:"):
        yield
        return
    with ExitStack() as held:
        try:
            held.enter_context(beside_database(database, "screening", wait=False))
        except BlockingIOError as exc:
            raise ScreeningBusy from exc
        yield


@fewer_collections()
def run_screening(
    *,
    units: Units,
    catalog: Catalog,
    as_of: date,
    authorize_for: Callable[[int], Authorizer],
    incremental: bool = False,
    timezone: str = "Asia/Tokyo",
) -> RunOutcome:
    """Screen every child consent allows (or, incrementally, those whose data changed). One run
    at a time: while another holds the lock (`one_run_at_a_time`), raise ScreeningBusy having
    written nothing.

    `units()` gives a unit of work (commit on success, roll back on error); `authorize_for(run_id)`
    gives consent's authorize_many with the run as the actor.
    """
    started = time.perf_counter()
    # The thread ends with the block, after its read: a failed run leaves no read behind it.
    # The lock is released last, after a failed run is marked so.
    with ExitStack() as held, ThreadPoolExecutor(max_workers=1, thread_name_prefix="screening-reads") as pool:
        with units() as session:
            held.enter_context(one_run_at_a_time(session.get_bind()))
            # Asked before the search: its temporary tables give the transaction an id (and on
            # SQLite open a write transaction), though no other connection sees them, and the
            # standing was then read after the features, now and then, by whichever thread had
            # counted a run of absences.
            apart = seen_alike_apart(session.connection())
            last = session.execute(
                sa.select(_run.c.started_at, _run.c.as_of, _run.c.catalog_version, _run.c.summary)
                .where(
                    _run.c.status == RunStatus.succeeded.value,
                    _run.c.kind.in_([RunKind.full.value, RunKind.incremental.value]),
                )
                .order_by(_run.c.id.desc())
                .limit(1)
            ).first()
            targets: set[int] | None = None
            if incremental and last is not None and _may_be_incremental(session, catalog, as_of, last):
                live, _trial = live_rules(session=session, catalog=catalog)
                targets = changed.changed_children(
                    session=session,
                    rules=live,
                    since=last.started_at,
                    watermark=int(last.summary["sync_watermark"]),
                    as_of=as_of,
                    last_as_of=last.as_of,
                    timezone=timezone,
                )
            kind = RunKind.full if targets is None else RunKind.incremental
            standing = _read_apart(pool, session, targets) if apart else None
            run = start_run(session=session, catalog=catalog, as_of=as_of, kind=kind)
            # Rows that syncs write from now on are new to the next incremental run.
            run.summary = {"sync_watermark": changed.sync_watermark(session=session)}
            session.add(run)
            run_id = run.id or 0
            scopes = {scope for rule in catalog.rules for scope in rule.scopes}
            allowed = authorize_for(run_id)(
                session=session, scopes=scopes, purpose=Purpose.early_support, student_ids=targets
            )
        try:
            with units() as session:
                run = session.get_one(ScreeningRun, run_id)
                evaluation = evaluate_children(
                    session=session, catalog=catalog, as_of=as_of, allowed=allowed, timezone=timezone
                )
                apply(
                    session=session,
                    run=run,
                    evaluation=evaluation,
                    considered=targets,
                    standing=None if standing is None else standing.result(),
                )
                outcome = RunOutcome(
                    run_id=run_id,
                    kind=kind,
                    status=RunStatus.succeeded,
                    children=run.children_screened,
                    opened=run.alerts_opened,
                    updated=run.alerts_updated,
                    cleared=run.alerts_cleared,
                    signals=run.signals_written,
                    seconds=round(time.perf_counter() - started, 3),
                )
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"[:500]
            log.exception(
                "screening run failed; the previous alerts stand", extra={"fields": {"run": run_id}}
            )
            with units() as session:
                session.execute(
                    sa.update(_run)
                    .where(_run.c.id == run_id)
                    .values(status=RunStatus.failed.value, finished_at=utcnow(), error=message)
                )
            raise
        return outcome


def _read_apart(
    pool: ThreadPoolExecutor, session: Session, children: Collection[int] | None
) -> Future[Standing]:
    """The CHILDREN's standing, read on POOL's thread and a connection of its own while consent
    and the features are asked. Reading and decoding the open alerts and their signals was a
    fifth of an incremental run at 250,000 children, with the server idle. Only where another
    connection sees what the session sees (`seen_alike_apart`: not an in-memory SQLite
    database, nor a transaction that has written); otherwise apply() reads it itself."""
    connection = session.connection()
    engine = connection.engine

    def read() -> Standing:
        with engine.connect() as connection:
            return read_standing(connection, children)

    return pool.submit(read)


def consent_authorizer(organisation: str) -> Callable[[int], Authorizer]:
    """consent.policy.authorize_many acting as screening run N of ORGANISATION."""

    def for_run(run_id: int) -> Authorizer:
        actor = policy.Actor(
            kind=policy.ActorKind.screening, ref=f"screening-run:{run_id}", organisation=organisation
        )

        def authorize(
            *,
            session: Session,
            scopes: Collection[Scope],
            purpose: Purpose,
            student_ids: Collection[int] | None = None,
            at: datetime | None = None,
        ) -> dict[int, dict[Scope, int]]:
            return policy.authorize_many(
                session=session,
                actor=actor,
                scopes=scopes,
                purpose=purpose,
                student_ids=student_ids,
                at=at,
            )

        return authorize

    return for_run
