"""Identity matching: variants, width, kana and spaces fold; the birth date is required; an
ambiguous or failed match goes to a person."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from app.sources.models import Source
from connectors.identity import Candidate, Person, kana_key, kanji_key, match, resolve
from connectors.models import IdentityReview, ReviewReason

BIRTH = date(2013, 7, 7)


def candidate(
    student_id: int, family: str, given: str, kana: tuple[str, str], birth: date = BIRTH
) -> Candidate:
    return Candidate(student_id, family, given, kana[0], kana[1], birth)


@pytest.mark.parametrize(
    ("written", "registered"),
    [
        (("髙橋", "一郎"), ("高橋", "一郎")),
        (("山﨑", "花"), ("山崎", "花")),
        (("渡邊", "翔"), ("渡辺", "翔")),
        (("渡邉", "翔"), ("渡辺", "翔")),
        (("齋藤", "蓮"), ("斎藤", "蓮")),
        (("齊藤", "蓮"), ("斎藤", "蓮")),
        (("濵田", "結衣"), ("浜田", "結衣")),
        (("高橋　", " 一郎"), ("高橋", "一郎")),  # full-width and half-width spaces
        (("ﾀｶﾊｼ", "ｲﾁﾛｳ"), ("タカハシ", "イチロウ")),  # half-width katakana
    ],
)
def test_variants_width_and_spacing_fold_to_one_key(
    written: tuple[str, str], registered: tuple[str, str]
) -> None:
    assert kanji_key(*written) == kanji_key(*registered)


def test_kana_readings_fold_hiragana_to_katakana() -> None:
    assert kana_key("たかはし", "いちろう") == kana_key("タカハシ", "イチロウ") == kana_key("ﾀｶﾊｼ", " ｲﾁﾛｳ")


def test_one_fitting_child_is_a_match_by_kanji_or_by_kana() -> None:
    children = [
        candidate(1, "高橋", "一郎", ("タカハシ", "イチロウ")),
        candidate(2, "高橋", "二郎", ("タカハシ", "ジロウ")),
    ]
    assert match(Person("髙橋", "一郎", None, None, BIRTH), children).student_id == 1
    # A registry that spells the kanji differently still matches on the reading and birth date.
    assert match(Person("鷹橋", "一朗", "たかはし", "いちろう", BIRTH), children).student_id == 1


def test_no_birth_date_or_a_different_one_is_no_match() -> None:
    children = [candidate(1, "高橋", "一郎", ("タカハシ", "イチロウ"))]
    assert match(Person("高橋", "一郎", None, None, None), children).reason is ReviewReason.no_match
    assert match(Person("高橋", "一郎", None, None, date(2013, 7, 8)), children).student_id is None


def test_twins_with_one_reading_are_ambiguous_and_go_to_review(session: Session) -> None:
    twins = [
        candidate(1, "佐藤", "ひかる", ("サトウ", "ヒカル")),
        candidate(2, "佐藤", "光", ("サトウ", "ヒカル")),
    ]
    person = Person("佐藤", "晃", "さとう", "ひかる", BIRTH)
    chosen = resolve(
        session=session,
        person=person,
        candidates=twins,
        source=Source.myna_portal,
        sync_run_id=None,
        record_ref="m-1",
    )
    assert chosen is None
    review = session.exec(select(IdentityReview).where(IdentityReview.record_ref == "m-1")).one()
    assert review.reason is ReviewReason.ambiguous
    assert review.candidate_student_ids == [1, 2]
