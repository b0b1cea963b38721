"""The public transparency page (/transparency): which data, which rules, who sees, how long.

Generated on every request from the catalog in force, the consent vocabulary and the staff role
matrix, so what residents read is what the service does (DOMAIN.md lesson 11). No sign-in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.staff.access import MATRIX
from app.web import templates
from consent.notice import DATA_LIFE_DAYS
from consent.scopes import PURPOSE_WORDING, SCOPE_WORDING, Purpose, Scope, Wording
from rules.catalog import Rule, RuleStatus, live_catalog
from rules.features import FEATURES, Feature, Kind
from rules.models import CATEGORY_WORDING, Category

router = APIRouter()


@dataclass(frozen=True)
class DataItem:
    scope: Scope | None
    wording: Wording
    features: list[Feature]


STAFF_RECORD_WORDING = Wording(
    "教職員の日常所見（担任・養護教諭・スクールカウンセラー・ソーシャルワーカーが記録した、気づいたことの種類と件数。"
    "文章の内容は判定に使いません。学校の記録のため同意画面の項目にはありませんが、"
    "「早期発見と支援」に同意されたご家庭のこどもについてだけ数え、データの規則と組み合わせてだけ使います）",
    "Staff's daily observations: the kind and number of what teachers, the nurse and counsellors "
    "recorded, never the notes themselves. The school's own record, so not an item on the consent "
    "screen; counted only for children whose families consented to early support, and only "
    "beside the data, never alone",
)


@dataclass(frozen=True)
class Audience:
    role: Wording
    sees: list[Wording]


def _data_items(rules: tuple[Rule, ...]) -> list[DataItem]:
    used: dict[Scope | None, set[str]] = defaultdict(set)
    for rule in rules:
        for name in rule.features:
            used[FEATURES[name].scope].add(name)
    items = [
        DataItem(scope, SCOPE_WORDING[scope], [FEATURES[n] for n in sorted(used[scope])])
        for scope in Scope
        if scope in used
    ]
    if None in used:
        items.append(DataItem(None, STAFF_RECORD_WORDING, [FEATURES[n] for n in sorted(used[None])]))
    return items


@router.get("/transparency", response_class=HTMLResponse, include_in_schema=False)
def transparency(request: Request) -> HTMLResponse:
    catalog = live_catalog.get()
    by_category: dict[Category, list[Rule]] = defaultdict(list)
    for rule in catalog.rules:
        by_category[rule.category].append(rule)
    audiences = [
        Audience(rule.wording, [SCOPE_WORDING[s] for s in Scope if s in rule.categories])
        for rule in MATRIX.values()
        if rule.categories
    ]
    return templates.TemplateResponse(
        request,
        "transparency.html",
        {
            "catalog": catalog,
            "categories": [(CATEGORY_WORDING[c], by_category[c]) for c in Category if by_category[c]],
            "data_items": _data_items(catalog.rules),
            "audiences": audiences,
            "purpose": PURPOSE_WORDING[Purpose.early_support],
            "data_life_days": DATA_LIFE_DAYS,
            "trial": RuleStatus.trial,
            "status_kind": Kind.status,
        },
    )
