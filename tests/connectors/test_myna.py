"""Myna Portal: the guardian authorizes chosen categories at the portal (code + PKCE); tsunagu
fetches, asynchronously, only what is both authorized there and consented here; the child is
found in the household by name and birth date, or a person reviews it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.roster.models import Guardian, Student
from app.sources.models import Benefit, BenefitStatus, HouseholdInfo, Source
from connectors import myna, service
from connectors.clients import school_clients
from connectors.models import IdentityReview, MynaLink, QuarantinedRecord, ReviewStatus, SyncStatus
from connectors.tokens import unseal
from consent.scopes import Scope
from mocks import myna_portal
from mocks.faults import StandInState
from mocks.myna_portal import MynaRecords, Resident
from mocks.server import serving
from tests.factories import make_grant, make_guardian, make_school, make_student

REDIRECT = "http://tsunagu.test/guardian/myna/callback"
BIRTH = date(2013, 6, 1)


def household(**changes: Any) -> dict[str, Any]:
    record = {
        "asOf": date(2026, 6, 1),
        "members": [
            {"relation": "本人", "familyName": "髙橋", "givenName": "花子", "birthDate": date(1985, 1, 1)},
            # the portal spells the family name with the variant kanji and the reading in hiragana
            {
                "relation": "子",
                "familyName": "髙橋",
                "givenName": "一郎",
                "familyNameKana": "たかはし",
                "givenNameKana": "いちろう",
                "birthDate": BIRTH,
            },
        ],
        "householdSize": 2,
        "adults": 1,
        "singleParent": True,
        "memberNeedingCare": None,
    }
    return record | changes


@dataclass
class Portal:
    engine: Engine
    url: str
    data: MynaRecords
    state: StandInState
    student: Student
    guardian: Guardian

    @property
    def settings(self) -> Settings:
        return Settings(myna_portal_url=self.url, upstream_timeout_seconds=10.0)

    async def link(self, chosen: list[str]) -> MynaLink:
        """The guardian's round trip through the portal, as a browser would make it."""
        with Session(self.engine, expire_on_commit=False) as session:
            assert self.guardian.id is not None and self.student.id is not None
            url = myna.start_link(
                session=session,
                settings=self.settings,
                guardian_id=self.guardian.id,
                student_id=self.student.id,
                categories=list(myna_portal.CATEGORIES),
                redirect_uri=REDIRECT,
            )
            session.commit()
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        async with httpx.AsyncClient() as browser:
            page = await browser.get(url)
            assert page.status_code == 200 and "マイナンバーカード" in page.text
            answer = await browser.post(
                f"{self.url}/oauth/authorize",
                data={
                    "client_id": query["client_id"],
                    "redirect_uri": query["redirect_uri"],
                    "state": query["state"],
                    "code_challenge": query["code_challenge"],
                    "resident": "card-1",
                    "decision": "allow",
                    "categories": chosen,
                },
            )
        back = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
        with Session(self.engine, expire_on_commit=False) as session:
            link = myna.pending_link(session=session, state=back["state"])
            assert link.code_verifier is not None
            token = await myna.exchange_code(
                settings=self.settings,
                code=back["code"],
                code_verifier=unseal(link.code_verifier),
                redirect_uri=REDIRECT,
            )
            myna.activate(session=session, link=link, token=token)
            session.commit()
            return link

    def consent(self, scopes: list[Scope], data_from: date | None = None) -> None:
        with Session(self.engine) as session:
            make_grant(
                session, student=self.student, guardian=self.guardian, scopes=scopes, data_from=data_from
            )
            session.commit()

    async def sync(self) -> list[Any]:
        with Session(self.engine) as session:
            service.enqueue(session=session, sources=[Source.myna_portal], requested_by="test")
            session.commit()
        clients = school_clients(self.settings)
        try:
            return await service.work(
                engine=self.engine, worker="test", clients=clients, settings=self.settings
            )
        finally:
            await clients.aclose()

    def rows(self, table: Any) -> list[Any]:
        with Session(self.engine) as session:
            return list(session.exec(select(table).where(table.student_id == self.student.id)).all())


@pytest.fixture
def portal(sync_engine: Engine) -> Iterator[Portal]:
    with Session(sync_engine, expire_on_commit=False) as session:
        student = make_student(
            session,
            school=make_school(session),
            family_name="高橋",
            given_name="一郎",
            family_name_kana="タカハシ",
            given_name_kana="イチロウ",
            birth_date=BIRTH,
        )
        guardian = make_guardian(session, student=student)
        session.commit()
    data = MynaRecords()
    data.add(
        Resident(
            "card-1",
            "テスト 花子",
            {
                "household": household(),
                "child_allowance": {"asOf": date(2026, 6, 1), "receiving": True},
                "single_parent": {"asOf": date(2026, 6, 1), "receiving": True},
                "tax": {"asOf": date(2026, 6, 1), "receiving": None},
            },
        )
    )
    app = myna_portal.create_app(data)
    with serving(app) as url:
        # Every sync in this module's database sees every link: start from none active.
        with Session(sync_engine) as session:
            for old in session.exec(select(MynaLink)).all():
                session.delete(old)
            session.commit()
        yield Portal(sync_engine, url, data, app.state.stand_in, student, guardian)


async def test_only_categories_authorized_there_and_consented_here_are_fetched(portal: Portal) -> None:
    link = await portal.link(["household", "child_allowance", "tax"])  # the citizen left 単親 unticked
    assert link.categories == ["child_allowance", "household", "tax"]
    portal.consent([Scope.myna_household])  # the family consented to the household only, so far
    runs = await portal.sync()
    assert runs[0].status is SyncStatus.succeeded, runs[0].errors
    assert [a.students for a in portal.state.asked] == [["household"]]
    [info] = portal.rows(HouseholdInfo)
    assert (info.household_size, info.single_parent, info.member_needing_care) == (2, True, None)
    assert portal.rows(BenefitStatus) == []

    portal.consent([Scope.myna_household, Scope.myna_benefits])
    await portal.sync()
    assert portal.state.asked[-1].students == ["child_allowance", "household", "tax"]
    benefits = {(b.benefit, b.receiving) for b in portal.rows(BenefitStatus)}
    assert benefits == {(Benefit.child_allowance, True), (Benefit.resident_tax_exempt, None)}


async def test_the_portal_refuses_a_category_that_was_not_authorized(portal: Portal) -> None:
    link = await portal.link(["household"])
    assert link.access_token is not None
    async with httpx.AsyncClient(base_url=portal.url) as http:
        refused = await http.post(
            "/request",
            json={"categories": ["household", "public_assistance"]},
            headers={"authorization": f"Bearer {unseal(link.access_token)}"},
        )
    assert refused.status_code == 403
    assert refused.json()["error"] == "category_not_authorized"


async def test_a_household_without_the_child_stores_nothing_and_asks_a_person(portal: Portal) -> None:
    other = household(
        members=[{"relation": "子", "familyName": "佐藤", "givenName": "次郎", "birthDate": BIRTH}]
    )
    portal.data.residents["card-1"].records["household"] = other
    link = await portal.link(["household", "child_allowance"])
    portal.consent([Scope.myna_household, Scope.myna_benefits])
    runs = await portal.sync()
    assert runs[0].status is SyncStatus.failed
    assert portal.rows(HouseholdInfo) == [] and portal.rows(BenefitStatus) == []
    with Session(portal.engine) as session:
        review = session.exec(
            select(IdentityReview).where(IdentityReview.record_ref == f"link:{link.id}")
        ).one()
    assert (review.family_name, review.given_name) == ("佐藤", "次郎")

    # A person decides (the portal spells the name another way: it is this child); the next run
    # uses that decision and asks nobody again.
    with Session(portal.engine) as session:
        decided = session.get(IdentityReview, review.id)
        assert decided is not None
        decided.status, decided.resolved_student_id = ReviewStatus.resolved, portal.student.id
        session.add(decided)
        session.commit()
    runs = await portal.sync()
    assert runs[0].status is SyncStatus.succeeded, runs[0].errors
    assert len(portal.rows(HouseholdInfo)) == 1
    with Session(portal.engine) as session:
        reviews = session.exec(
            select(IdentityReview).where(IdentityReview.record_ref == f"link:{link.id}")
        ).all()
    assert [r.id for r in reviews] == [review.id]


async def test_an_expired_token_is_refreshed_through_authlib_mid_run(portal: Portal) -> None:
    await portal.link(["household"])
    portal.consent([Scope.myna_household])
    portal.state.faults.expire_token_requests = 1
    runs = await portal.sync()
    assert runs[0].status is SyncStatus.succeeded, runs[0].errors
    assert len(portal.rows(HouseholdInfo)) == 1


async def test_records_before_the_consented_data_range_are_not_stored(portal: Portal) -> None:
    await portal.link(["household", "child_allowance", "tax"])
    # The family shares data from July on; the portal's records are as of June 1st.
    portal.consent([Scope.myna_household, Scope.myna_benefits], data_from=date(2026, 7, 1))
    runs = await portal.sync()
    assert runs[0].status is SyncStatus.succeeded, runs[0].errors
    assert (runs[0].fetched, runs[0].discarded) == (3, 3)
    assert portal.rows(HouseholdInfo) == [] and portal.rows(BenefitStatus) == []

    records = portal.data.residents["card-1"].records
    records["household"] = household(asOf=date(2026, 7, 1))
    records["tax"] = {"asOf": date(2026, 7, 2), "receiving": True}
    runs = await portal.sync()
    assert runs[0].discarded == 1  # the child allowance, still as of June
    assert [h.as_of for h in portal.rows(HouseholdInfo)] == [date(2026, 7, 1)]
    assert {(b.benefit, b.as_of) for b in portal.rows(BenefitStatus)} == {
        (Benefit.resident_tax_exempt, date(2026, 7, 2))
    }


async def test_a_bad_portal_record_is_quarantined_once_per_version(portal: Portal) -> None:
    link = await portal.link(["household", "tax"])
    portal.consent([Scope.myna_household, Scope.myna_benefits])
    portal.data.residents["card-1"].records["tax"] = {"asOf": date(2026, 6, 1), "receiving": "maybe"}
    first, again = await portal.sync(), await portal.sync()
    assert (first[0].quarantined, again[0].quarantined) == (1, 0)
    portal.data.residents["card-1"].records["tax"] = {"asOf": date(2026, 6, 2), "receiving": "maybe"}
    changed = await portal.sync()
    assert changed[0].quarantined == 1
    with Session(portal.engine) as session:
        entries = session.exec(
            select(QuarantinedRecord).where(QuarantinedRecord.record_ref == f"link:{link.id}")
        ).all()
    assert [e.resource for e in entries] == ["tax", "tax"]
    assert all(e.grant_id is not None for e in entries)
