"""The public transparency page is generated from the live catalog and the consent scopes."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from consent.scopes import SCOPE_WORDING, Scope
from rules import catalog as catalog_module
from rules.catalog import CATALOG_DIR, LiveCatalog, RuleStatus, load_catalog


async def test_public_page_lists_data_rules_and_roles(client: httpx.AsyncClient) -> None:
    response = await client.get("/transparency", headers={"accept": "text/html"})
    assert response.status_code == 200
    page = response.text
    catalog = load_catalog()
    for rule in catalog.rules:
        assert rule.title.ja in page
    assert "試行中" in page and any(r.status is RuleStatus.trial for r in catalog.rules)
    assert SCOPE_WORDING[Scope.school_attendance].ja in page
    assert "スクールソーシャルワーカー" in page and "365日" in page
    assert catalog.version in page
    assert "性別や国籍は判定に使いません" in page


async def test_the_page_follows_the_catalog(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in CATALOG_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "extra.yaml").write_text(
        """\
category: wellbeing
rules:
  - id: many_headaches_noted
    title: {ja: 保健室の利用が急に増えた, en: Sudden rise in nurse visits}
    description: {ja: 直近7日間で3回以上, en: three or more in 7 days}
    scopes: [school.nurse_visits]
    weight: 1
    atoms:
      visits: nurse_visits_7d >= 3
    when: visits
""",
        encoding="utf-8",
    )
    monkeypatch.setattr(catalog_module, "live_catalog", LiveCatalog(directory=tmp_path))
    monkeypatch.setattr("app.transparency.live_catalog", catalog_module.live_catalog)
    page = (await client.get("/transparency")).text
    assert "保健室の利用が急に増えた" in page
