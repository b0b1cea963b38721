"""Identity matching (名寄せ) for records that name a child but carry no id we know.

Children are bound by the school's student id at consent time; this is only for records that
can be matched by name (e.g. the members of a Myna Portal household). Names are compared after
NFKC (full/half width), removal of every space, variant kanji folded by a table in data
(`data/variant_kanji.tsv`: 髙→高, 﨑→崎, 邊/邉→辺 …), and kana folded to katakana. A match needs
the birth date and the kanji or the kana name; exactly one child must fit. Anything else goes to
a person as an IdentityReview: the connector never guesses.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from sqlmodel import Session

from app.sources.models import Source
from connectors.models import IdentityReview, ReviewReason

VARIANTS_FILE = Path(__file__).parent / "data" / "variant_kanji.tsv"
_HIRAGANA = range(0x3041, 0x3097)  # ぁ … ゖ; katakana is 0x60 above


@cache
def _variant_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for line in VARIANTS_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line == "variant\tcanonical":
            continue
        variant, canonical = line.split("\t")
        table[ord(variant)] = canonical
    return table


def _compact(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def kanji_key(family_name: str, given_name: str) -> str:
    """The form a written name is compared in."""
    return _compact(family_name + given_name).translate(_variant_table())


def kana_key(family_kana: str, given_kana: str) -> str:
    """The form a reading is compared in: katakana, no spaces, full width."""
    text = _compact(family_kana + given_kana)
    return "".join(chr(ord(c) + 0x60) if ord(c) in _HIRAGANA else c for c in text)


@dataclass(frozen=True)
class Person:
    """A person as an outside record names them."""

    family_name: str
    given_name: str
    family_name_kana: str | None
    given_name_kana: str | None
    birth_date: date | None


@dataclass(frozen=True)
class Candidate:
    student_id: int
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    birth_date: date


@dataclass(frozen=True)
class Match:
    student_id: int | None
    reason: ReviewReason | None  # why there is no match
    candidates: tuple[int, ...] = ()


def match(person: Person, candidates: Sequence[Candidate]) -> Match:
    """The one child PERSON is, or why that cannot be said."""
    if person.birth_date is None:
        return Match(None, ReviewReason.no_match)
    written = kanji_key(person.family_name, person.given_name)
    read = (
        kana_key(person.family_name_kana, person.given_name_kana)
        if person.family_name_kana and person.given_name_kana
        else None
    )
    fitting = tuple(
        c.student_id
        for c in candidates
        if c.birth_date == person.birth_date
        and (
            kanji_key(c.family_name, c.given_name) == written
            or (read is not None and kana_key(c.family_name_kana, c.given_name_kana) == read)
        )
    )
    if len(fitting) == 1:
        return Match(fitting[0], None, fitting)
    return Match(None, ReviewReason.ambiguous if fitting else ReviewReason.no_match, fitting)


def resolve(
    *,
    session: Session,
    person: Person,
    candidates: Sequence[Candidate],
    source: Source,
    sync_run_id: int | None,
    record_ref: str | None,
) -> int | None:
    """The matched child's id; otherwise an IdentityReview for a person, and None."""
    found = match(person, candidates)
    if found.student_id is not None:
        return found.student_id
    assert found.reason is not None
    session.add(
        IdentityReview(
            sync_run_id=sync_run_id,
            source=source,
            record_ref=record_ref,
            family_name=person.family_name,
            given_name=person.given_name,
            family_name_kana=person.family_name_kana,
            given_name_kana=person.given_name_kana,
            birth_date=person.birth_date,
            reason=found.reason,
            candidate_student_ids=list(found.candidates),
        )
    )
    session.flush()
    return None
