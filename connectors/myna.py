"""Myna Portal「わたしの情報」: the guardian's authorization (OAuth 2.0 code + PKCE on Authlib's
httpx client) and the asynchronous fetch of the categories the family consented to.

The fetch names only categories that are both authorized at the portal (the link) and allowed
by consent now (`consent.policy`); a child whose consent allows none is not asked about at all.
The household record lists its members by name: the linked child must be found among them by
identity matching (connectors.identity) or nothing of that household is stored and a person
reviews it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import warnings
from collections.abc import Callable
from datetime import UTC, date, timedelta
from typing import Any, Literal

import httpx
import orjson
from authlib.deprecate import AuthlibDeprecationWarning
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.config import Settings
from app.core.db import session_scope
from app.core.errors import BadRequest, Forbidden, UpstreamError
from app.core.types import utcnow
from app.roster.models import GuardianLink, Student
from app.sources.models import Benefit, BenefitStatus, HouseholdInfo, Source
from connectors import identity, store
from connectors import quarantine as quarantines
from connectors.http import RetryPolicy, UpstreamHttp, upstream_timeout
from connectors.models import IdentityReview, MynaLink, MynaLinkStatus, ReviewStatus, SyncRun
from connectors.records import PROVENANCE
from connectors.tokens import seal, unseal
from consent import policy
from consent.scopes import Purpose, Scope

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork; the whole stack here is on httpx, which Authlib still
    # supports (it only warns at import).
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client

BENEFIT_OF = {
    "child_allowance": Benefit.child_allowance,
    "single_parent": Benefit.child_rearing_allowance,
    "school_aid": Benefit.school_attendance_aid,
    "public_assistance": Benefit.public_assistance,
    "tax": Benefit.resident_tax_exempt,
}
SCOPE_OF = {"household": Scope.myna_household, **dict.fromkeys(BENEFIT_OF, Scope.myna_benefits)}
CATEGORY_WORDING = {
    "household": ("世帯の情報", "Household"),
    "child_allowance": ("児童手当", "Child allowance"),
    "single_parent": ("ひとり親家庭の支援（児童扶養手当）", "Child rearing allowance"),
    "school_aid": ("就学援助", "School attendance aid"),
    "public_assistance": ("生活保護", "Public assistance"),
    "tax": ("住民税非課税", "Resident-tax exemption"),
}
MAX_POLLS = 20
HOUSEHOLD = store.Target(
    HouseholdInfo.__table__,  # type: ignore[attr-defined]
    key=("student_id", "as_of"),
    compared=("household_size", "adults", "single_parent", "member_needing_care", "grant_id"),
    provenance=PROVENANCE,
)
BENEFITS = store.Target(
    BenefitStatus.__table__,  # type: ignore[attr-defined]
    key=("student_id", "benefit", "as_of"),
    compared=("receiving", "grant_id"),
    provenance=PROVENANCE,
)


class Member(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    relation: str | None = None
    family_name: str = Field(alias="familyName", min_length=1, max_length=64)
    given_name: str = Field(alias="givenName", min_length=1, max_length=64)
    family_name_kana: str | None = Field(default=None, alias="familyNameKana", max_length=64)
    given_name_kana: str | None = Field(default=None, alias="givenNameKana", max_length=64)
    birth_date: date | None = Field(default=None, alias="birthDate")


class HouseholdRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    category: Literal["household"]
    as_of: date = Field(alias="asOf")
    members: list[Member]
    household_size: int | None = Field(default=None, alias="householdSize", ge=1)
    adults: int | None = Field(default=None, ge=0)
    single_parent: bool | None = Field(default=None, alias="singleParent")
    member_needing_care: bool | None = Field(default=None, alias="memberNeedingCare")


class BenefitRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    category: Literal["child_allowance", "single_parent", "school_aid", "public_assistance", "tax"]
    as_of: date = Field(alias="asOf")
    receiving: bool | None = None


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _oauth(settings: Settings, redirect_uri: str | None = None, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=settings.myna_client_id,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",  # noqa: S106 - a public client, proven by PKCE
        timeout=upstream_timeout(settings),
        **kwargs,
    )


def start_link(
    *,
    session: Session,
    settings: Settings,
    guardian_id: int,
    student_id: int,
    categories: list[str],
    redirect_uri: str,
) -> str:
    """Record a pending link and return the portal URL to send the guardian to."""
    unknown = sorted(set(categories) - set(SCOPE_OF))
    if unknown or not categories:
        raise BadRequest(f"unknown Myna Portal categories: {', '.join(unknown) or 'none chosen'}")
    verified = session.exec(
        select(GuardianLink.id).where(
            GuardianLink.guardian_id == guardian_id,
            GuardianLink.student_id == student_id,
            col(GuardianLink.verified_at).is_not(None),
        )
    ).first()
    if verified is None:
        raise Forbidden("このお子さまとの確認済みのつながりがありません / not your verified child")
    verifier = generate_token(64)
    url, state = _oauth(settings, redirect_uri, scope=" ".join(categories)).create_authorization_url(
        f"{settings.myna_portal_url}/oauth/authorize", code_verifier=verifier
    )
    session.add(
        MynaLink(
            guardian_id=guardian_id,
            student_id=student_id,
            categories=sorted(categories),
            state_hash=_hash(state),
            code_verifier=seal(verifier),
        )
    )
    session.flush()
    return str(url)


def pending_link(*, session: Session, state: str, guardian_id: int | None = None) -> MynaLink:
    """The link waiting for this state (of this guardian, when named); each state works once."""
    link = session.exec(
        select(MynaLink).where(MynaLink.state_hash == _hash(state), MynaLink.status == MynaLinkStatus.pending)
    ).first()
    if link is None or link.code_verifier is None or guardian_id not in (None, link.guardian_id):
        raise BadRequest("この連携要求は見つかりません / unknown or used authorization state")
    return link


def linkable_children(*, session: Session, guardian_id: int) -> list[tuple[Student, list[str]]]:
    """The guardian's verified children, each with the categories already linked."""
    children = session.exec(
        select(Student)
        .join(GuardianLink, col(GuardianLink.student_id) == col(Student.id))
        .where(GuardianLink.guardian_id == guardian_id, col(GuardianLink.verified_at).is_not(None))
        .order_by(col(Student.id))
    ).all()
    linked: dict[int, set[str]] = {}
    for link in session.exec(
        select(MynaLink).where(MynaLink.guardian_id == guardian_id, MynaLink.status == MynaLinkStatus.active)
    ):
        linked.setdefault(link.student_id, set()).update(link.categories)
    return [(child, sorted(linked.get(child.id or 0, set()))) for child in children]


async def exchange_code(
    *, settings: Settings, code: str, code_verifier: str, redirect_uri: str
) -> dict[str, Any]:
    """The portal's token for a code (Authlib checks the answer; PKCE proves it is ours)."""
    async with _oauth(settings, redirect_uri) as oauth:
        try:
            token: dict[str, Any] = await oauth.fetch_token(
                f"{settings.myna_portal_url}/oauth/token", code=code, code_verifier=code_verifier
            )
        except httpx.TransportError as exc:
            raise UpstreamError(f"myna_portal: {type(exc).__name__}", retryable=True) from exc
    return token


def activate(*, session: Session, link: MynaLink, token: dict[str, Any]) -> MynaLink:
    """Store the token; the link covers the categories the citizen actually agreed to."""
    link.categories = sorted(set(str(token.get("scope", "")).split()) & set(SCOPE_OF))
    _store_token(link, token)
    link.status = MynaLinkStatus.active
    link.state_hash = None
    link.code_verifier = None
    link.linked_at = utcnow()
    session.add(link)
    session.flush()
    return link


def _store_token(link: MynaLink, token: dict[str, Any]) -> None:
    link.access_token = seal(str(token["access_token"]))
    if token.get("refresh_token"):
        link.refresh_token = seal(str(token["refresh_token"]))
    link.expires_at = utcnow() + timedelta(seconds=int(token.get("expires_in", 3600)))


class _LinkToken:
    """The token fetcher of one link: its stored token first, then Authlib's refresh on a 401."""

    def __init__(self, settings: Settings, link: MynaLink) -> None:
        self.settings = settings
        self.link = link
        self.used = False
        self.renewed: dict[str, Any] | None = None

    async def __call__(self, _http: httpx.AsyncClient) -> str:
        expires = self.link.expires_at
        expired = (
            expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= utcnow()
        )
        if not self.used and not expired and self.link.access_token:
            self.used = True
            return unseal(self.link.access_token)
        if self.link.refresh_token is None:
            raise UpstreamError("myna_portal: token expired and no refresh token", retryable=False)
        async with _oauth(self.settings) as oauth:
            try:
                token = await oauth.refresh_token(
                    f"{self.settings.myna_portal_url}/oauth/token",
                    refresh_token=unseal(self.link.refresh_token),
                )
            except httpx.TransportError as exc:
                raise UpstreamError(f"myna_portal: {type(exc).__name__}", retryable=True) from exc
        self.renewed = dict(token)
        _store_token(self.link, self.renewed)
        return str(token["access_token"])


async def _fetch(http: UpstreamHttp, categories: list[str], poll: float) -> list[dict[str, Any]]:
    body, _ = await http.json("POST", "/request", body={"categories": categories, "mode": "latest"})
    process_id = body.get("process_id") if isinstance(body, dict) else None
    if not process_id:
        raise UpstreamError("myna_portal: no process id", retryable=True)
    for attempt in range(MAX_POLLS):
        result, _ = await http.json("POST", "/result", body={"process_id": process_id})
        if isinstance(result, dict) and result.get("status") == "done":
            records = result.get("records")
            if not isinstance(records, list):
                raise UpstreamError("myna_portal: result without records", retryable=True)
            return [r if isinstance(r, dict) else {"value": r} for r in records]
        await asyncio.sleep(min(poll * 2**attempt, 5.0))
    raise UpstreamError("myna_portal: result not ready in time", retryable=True)


async def sync_links(
    *,
    engine: Engine,
    run: SyncRun,
    settings: Settings,
    poll_seconds: float = 0.05,
    retry: RetryPolicy | None = None,
    on_link: Callable[[MynaLink], None] | None = None,
) -> dict[str, Any]:
    """Fetch every active link's consented categories; the counts and notes of the run."""
    tally: dict[str, Any] = dict.fromkeys(
        ("fetched", "inserted", "updated", "unchanged", "quarantined", "discarded"), 0
    )
    errors: list[str] = []
    actor = Actor(kind=ActorKind.connector, ref=f"sync-run:{run.id}", organisation="")

    def plan(session: Session) -> list[tuple[MynaLink, list[str], dict[Scope, int]]]:
        links = session.exec(
            select(MynaLink).where(MynaLink.status == MynaLinkStatus.active).order_by(col(MynaLink.id))
        ).all()
        allowed = policy.authorize_many(
            session=session,
            actor=actor,
            scopes=[Scope.myna_household, Scope.myna_benefits],
            purpose=Purpose.early_support,
            student_ids=[link.student_id for link in links],
        )
        planned = []
        for link in links:
            grants = allowed.get(link.student_id, {})
            categories = [c for c in link.categories if SCOPE_OF[c] in grants]
            if categories:  # nothing consented: the portal is not asked about this child at all
                planned.append((link, categories, grants))
        return planned

    def in_db(work: Callable[[Session], Any]) -> Any:
        with session_scope(engine) as session:
            return work(session)

    for link, categories, grants in await asyncio.to_thread(in_db, plan):
        token = _LinkToken(settings, link)
        http = UpstreamHttp(
            name="myna_portal",
            base_url=settings.myna_portal_url,
            timeout=upstream_timeout(settings),
            retry=retry,
            token_fetcher=token,
        )
        try:
            records = await _fetch(http, categories, poll_seconds)
        except UpstreamError as exc:
            errors.append(f"link {link.id}: {exc.message}")
            continue
        finally:
            await http.aclose()
        tally["fetched"] += len(records)

        store_link = functools.partial(
            _store,
            run=run,
            link=link,
            records=records,
            grants=grants,
            tally=tally,
            errors=errors,
            renewed=token.renewed,
        )
        await asyncio.to_thread(in_db, store_link)
        if on_link is not None:
            on_link(link)
    tally["errors"] = errors
    return tally


def _store(
    session: Session,
    *,
    run: SyncRun,
    link: MynaLink,
    records: list[dict[str, Any]],
    grants: dict[Scope, int],
    tally: dict[str, Any],
    errors: list[str],
    renewed: dict[str, Any] | None,
) -> None:
    if renewed is not None:
        stored_link = session.get(MynaLink, link.id)
        assert stored_link is not None
        _store_token(stored_link, renewed)
        session.add(stored_link)
    stopped = {
        s.student_id
        for s in policy.grants_stopped_since(session=session, since=run.started_at or utcnow())
        if s.grant_id in grants.values()
    }
    if link.student_id in stopped:
        errors.append(f"link {link.id}: consent stopped during the run; nothing stored")
        return
    # The first day each grant covers, where the family chose one: a record about an earlier day
    # (its `asOf`) is dropped unstored, as the school sources drop theirs. The portal returns the
    # latest record per category and cannot be asked for a range, so this is the earliest point.
    first_day = policy.data_from(session=session, grant_ids=set(grants.values()))
    held = set().union(
        *quarantines.known_digests(
            session=session, source=Source.myna_portal, partition=run.partition
        ).values()
    )
    households: list[HouseholdRecord] = []
    benefits: list[BenefitRecord] = []
    entries: dict[str, list[quarantines.Entry]] = {}
    for raw in records:
        category = raw.get("category")
        scope = SCOPE_OF.get(category) if isinstance(category, str) else None
        # A record of an unknown category came in answer to a request for consented ones: it is
        # kept under the grant of any of them, so a withdrawal of that grant deletes it.
        grant_id = grants[scope] if scope in grants else min(grants.values())
        first = first_day.get(grant_id)
        as_of = _as_of(raw)
        if first is not None and as_of is not None and as_of < first:
            tally["discarded"] += 1
            continue
        model: type[BaseModel] = HouseholdRecord if category == "household" else BenefitRecord
        try:
            parsed = model.model_validate(raw)
        except ValidationError as exc:
            entry = quarantines.Entry(
                record_ref=f"link:{link.id}",
                payload=orjson.dumps(raw).decode(),
                reason="; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
                )[:1000],
                grant_id=grant_id,
            )
            if entry.digest in held:
                tally["unchanged"] += 1  # quarantined by an earlier run: not again
            else:
                held.add(entry.digest)
                entries.setdefault(str(category or "unknown")[:32], []).append(entry)
                tally["quarantined"] += 1
            continue
        (households if isinstance(parsed, HouseholdRecord) else benefits).append(parsed)  # type: ignore[arg-type]
    assert run.id is not None
    for resource, items in entries.items():
        quarantines.save(
            session=session, run_id=run.id, source=Source.myna_portal, resource=resource, entries=items
        )
    for household in households:
        if not _is_member(session, run, link, household):
            errors.append(f"link {link.id}: the child was not found in the household; a person reviews it")
            return
    stamp = {"source": Source.myna_portal, "sync_run_id": run.id, "fetched_at": utcnow()}
    for target, rows in (
        (
            HOUSEHOLD,
            [
                {
                    "student_id": link.student_id,
                    "as_of": h.as_of,
                    "household_size": h.household_size,
                    "adults": h.adults,
                    "single_parent": h.single_parent,
                    "member_needing_care": h.member_needing_care,
                    "grant_id": grants[Scope.myna_household],
                }
                for h in households
                if Scope.myna_household in grants
            ],
        ),
        (
            BENEFITS,
            [
                {
                    "student_id": link.student_id,
                    "benefit": BENEFIT_OF[b.category],
                    "as_of": b.as_of,
                    "receiving": b.receiving,
                    "grant_id": grants[Scope.myna_benefits],
                }
                for b in benefits
                if Scope.myna_benefits in grants
            ],
        ),
    ):
        counts = store.write(session=session, target=target, rows=rows, stamp=stamp)
        tally["inserted"] += counts.inserted
        tally["updated"] += counts.updated
        tally["unchanged"] += counts.unchanged


def _as_of(raw: dict[str, Any]) -> date | None:
    """The day a record is as of, where it gives one that reads as a date (else validation says why)."""
    value = raw.get("asOf")
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _is_member(session: Session, run: SyncRun, link: MynaLink, household: HouseholdRecord) -> bool:
    """Whether the linked child is among the household's children, by name and birth date.

    When the child is not found, each child of the household that matched no one (or more than
    one) goes to a person for review, once: their decision is used from then on.
    """
    siblings = session.exec(
        select(Student)
        .join(GuardianLink, col(GuardianLink.student_id) == col(Student.id))
        .where(GuardianLink.guardian_id == link.guardian_id)
    ).all()
    candidates = [
        identity.Candidate(
            s.id, s.family_name, s.given_name, s.family_name_kana, s.given_name_kana, s.birth_date
        )
        for s in siblings
        if s.id is not None
    ]
    children = [
        identity.Person(m.family_name, m.given_name, m.family_name_kana, m.given_name_kana, m.birth_date)
        for m in household.members
        if m.relation in (None, "子")
    ]
    if any(identity.match(child, candidates).student_id == link.student_id for child in children):
        return True
    # A person's earlier decision about one of these household members stands (never a guess).
    decided = session.exec(
        select(
            col(IdentityReview.family_name), col(IdentityReview.given_name), col(IdentityReview.birth_date)
        ).where(
            IdentityReview.record_ref == f"link:{link.id}",
            IdentityReview.status == ReviewStatus.resolved,
            IdentityReview.resolved_student_id == link.student_id,
        )
    ).all()
    decided_members = {tuple(row) for row in decided}
    if any((c.family_name, c.given_name, c.birth_date) in decided_members for c in children):
        return True
    for child in children:
        already = session.exec(
            select(IdentityReview.id).where(
                IdentityReview.record_ref == f"link:{link.id}",
                IdentityReview.family_name == child.family_name,
                IdentityReview.given_name == child.given_name,
            )
        ).first()
        if already is None:
            identity.resolve(
                session=session,
                person=child,
                candidates=candidates,
                source=Source.myna_portal,
                sync_run_id=run.id,
                record_ref=f"link:{link.id}",
            )
    return False
