"""The support-resource directory: staff keep it (forms, CSV all-or-nothing), anyone searches it."""

from __future__ import annotations

import codecs

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, func, select

from app.roster.models import StaffRole
from notify import demo, resources
from notify.models import Need, ResourceKind, SupportResource
from tests.notify.conftest import staff_client

HTML = {"accept": "text/html"}
HEADER = "name_ja,name_en,kind,area,age_min,age_max,needs,hours_ja,contact,languages,description_ja\n"
GOOD_ROWS = (
    "みなみ食堂,Minami cafeteria,kodomo_shokudo,南地区,0,18,meals|place,毎週金曜,0000-1,ja|en,ごはん\n"
    "まちの相談室,,consultation,市内全域,0,22,consultation、money,平日,0000-2,ja,どんなことでも\n"
)


def count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(SupportResource)).one()


async def upload(client: httpx.AsyncClient, csrf: str, data: bytes) -> httpx.Response:
    return await client.post(
        "/staff/resources/import",
        data={"csrf_token": csrf},
        files={"file": ("resources.csv", data, "text/csv")},
        headers=HTML,
    )


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        ((HEADER + GOOD_ROWS).encode("utf-8"), "UTF-8"),
        (codecs.BOM_UTF8 + (HEADER + GOOD_ROWS).encode("utf-8"), "UTF-8 (BOM)"),
        ((HEADER + GOOD_ROWS).encode("cp932"), "Shift_JIS"),
    ],
)
async def test_csv_import_reads_utf8_with_or_without_bom_and_shift_jis(
    app: FastAPI, client: httpx.AsyncClient, session: Session, encoded: bytes, encoding: str
) -> None:
    csrf = staff_client(client, session)
    response = await upload(client, csrf, encoded)
    assert response.status_code == 200, response.text
    assert "新規 2 件" in response.text and encoding in response.text
    found = session.exec(select(SupportResource).where(SupportResource.name_ja == "まちの相談室")).one()
    assert found.needs == ["consultation", "money"] and found.age_max == 22


async def test_one_broken_row_imports_nothing_and_names_each_problem(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    csrf = staff_client(client, session)
    broken = (
        HEADER
        + GOOD_ROWS
        + "壊れた行,,cafeteria,北地区,0,18,,,,ja,\n"  # row 4: unknown kind
        + "年齢が逆,,ibasho,北地区,15,6,,,,ja,\n"  # row 5: ages reversed
        + '=HYPERLINK("http://evil"),,ibasho,北地区,0,18,,,,ja,\n'  # row 6: a formula
        + "言語,,ibasho,北地区,0,18,,,,xx,\n"  # row 7: unknown language
        + "みなみ食堂,,kodomo_shokudo,南地区,0,18,,,,ja,\n"  # row 8: same as row 2
        + "長すぎる"
        + "あ" * 100
        + ",,ibasho,北地区,0,18,,,,ja,\n"  # row 9: name too long
    )
    response = await upload(client, csrf, broken.encode("utf-8"))
    assert response.status_code == 422
    assert "何も取り込んでいません" in response.text
    for row, column in [
        ("4", "kind"),
        ("5", ""),
        ("6", "name_ja"),
        ("7", "languages"),
        ("8", "name_ja"),
        ("9", "name_ja"),
    ]:
        assert f"<td>{row}</td><td>{column}</td>" in response.text, (row, column)
    assert count(session) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x81\x20\xff\xfe\x00", "文字コードを判別できません"),
        ("名前,種類\nx,y\n".encode(), "不明な列"),
        (b"", "空のファイル"),
        ((b"name_ja,area\nx,y\n"), "必須の列がありません"),
    ],
)
async def test_unreadable_files_are_refused_whole(
    app: FastAPI, client: httpx.AsyncClient, session: Session, data: bytes, message: str
) -> None:
    csrf = staff_client(client, session)
    response = await upload(client, csrf, data)
    assert response.status_code == 422
    assert message in response.text
    assert count(session) == 0


async def test_export_then_import_updates_in_place(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    csrf = staff_client(client, session)
    demo.seed_demo(session=session)
    exported = await client.get("/staff/resources.csv")
    assert exported.content.startswith(codecs.BOM_UTF8)
    changed = exported.content.replace("毎週水曜".encode(), "毎週木曜".encode())
    response = await upload(client, csrf, changed)
    assert response.status_code == 200
    assert f"更新 {len(demo.DEMO_RESOURCES)} 件" in response.text
    assert count(session) == len(demo.DEMO_RESOURCES)
    cafeteria = session.exec(
        select(SupportResource).where(SupportResource.name_ja == "みんなの食堂 なかよし")
    ).one()
    assert cafeteria.hours_ja.startswith("毎週木曜")


async def test_export_neutralises_formula_like_cells(session: Session) -> None:
    resource = SupportResource(name_ja="-引く", kind=ResourceKind.other, area="北地区", description_ja="=1+1")
    text = resources.export_csv(resources=[resource])
    assert "'-引く" in text and "'=1+1" in text


async def test_staff_form_creates_edits_and_deletes(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    csrf = staff_client(client, session)
    form = {
        "csrf_token": csrf,
        "name_ja": "しずかな自習室",
        "kind": "learning_support",
        "area": "北地区",
        "age_min": "12",
        "age_max": "18",
        "needs": ["study", "place"],
        "languages": ["ja"],
        "published": "1",
    }
    created = await client.post("/staff/resources", data=form, headers=HTML)
    assert created.status_code == 303
    resource = session.exec(select(SupportResource)).one()
    assert resource.needs == ["study", "place"]
    bad = await client.post(
        f"/staff/resources/{resource.id}", data={**form, "age_min": "19", "age_max": "3"}, headers=HTML
    )
    assert bad.status_code == 422 and "age_min is above age_max" in bad.text
    session.refresh(resource)
    assert resource.age_min == 12
    assert (
        await client.post(f"/staff/resources/{resource.id}/delete", data={"csrf_token": csrf}, headers=HTML)
    ).status_code == 303
    assert count(session) == 0


async def test_forms_need_csrf_and_a_municipal_role(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    staff_client(client, session)
    forged = await client.post(
        "/staff/resources", data={"name_ja": "x", "kind": "other", "area": "y"}, headers=HTML
    )
    assert forged.status_code == 403
    client.cookies.clear()
    staff_client(client, session, StaffRole.homeroom_teacher)
    assert (await client.get("/staff/resources", headers=HTML)).status_code == 403
    assert count(session) == 0


async def test_public_search_by_area_age_and_need(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    demo.seed_demo(session=session)
    everyone = (await client.get("/api/support-resources")).json()
    assert len(everyone) == len(demo.DEMO_RESOURCES)
    north_meals = (
        await client.get("/api/support-resources", params={"area": "北地区", "need": "meals"})
    ).json()
    assert [r["name_ja"] for r in north_meals] == ["北地区こども食堂 ひだまり"]
    teen_study = (
        await client.get("/api/support-resources", params={"age": 13, "need": Need.study.value})
    ).json()
    assert {r["name_ja"] for r in teen_study} == {"放課後学習教室 まなびば", "南地区 学習支援室"}
    page = await client.get("/support/", params={"area": "中央地区", "q": "食堂"}, headers=HTML)
    assert "みんなの食堂 なかよし" in page.text and "ひだまり" not in page.text
    assert (await client.get("/api/support-resources", params={"age": 99})).status_code == 422


async def test_unpublished_resources_stay_hidden(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    demo.seed_demo(session=session)
    hidden = session.exec(select(SupportResource)).first()
    assert hidden is not None
    hidden.published = False
    session.add(hidden)
    session.flush()
    assert len((await client.get("/api/support-resources")).json()) == len(demo.DEMO_RESOURCES) - 1
    assert (await client.get(f"/support/{hidden.id}", headers=HTML)).status_code == 404


def test_seeding_twice_adds_nothing(session: Session) -> None:
    assert demo.seed_demo(session=session) == len(demo.DEMO_RESOURCES)
    assert demo.seed_demo(session=session) == 0
