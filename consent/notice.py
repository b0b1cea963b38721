"""The consent notice (ISO/IEC 29184): purpose, items, recipient, frequency, retention,
withdrawal and contact, in Japanese first and English second. Its exact text is hashed into
every grant, so what a family saw can be proven later."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from consent.scopes import PURPOSE_WORDING, SCOPE_WORDING, Purpose, Scope, Wording

NOTICE_VERSION = "2026-11-v1"
MUNICIPALITY_RECIPIENT = Wording(
    "加賀市（教育委員会・こども家庭センター）", "Kaga City (education board, child and family centre)"
)
FETCH_FREQUENCY = Wording(
    "毎日1回、学校・市のシステムから取得します", "Fetched once a day from school and city systems"
)
RETENTION = Wording(
    "取得した日から1年間保存し、その後削除します。同意を取り消したときは、法令で保存が必要なものを除き、すぐに削除します。",
    "Kept for one year, then deleted; deleted at once when you withdraw, unless the law requires keeping it.",
)
WITHDRAWAL = Wording(
    "いつでも「同意の管理」画面から一時停止・取り消しができます。取り消しても不利益はありません。",
    "You can pause or withdraw at any time on the consent dashboard, with no disadvantage to you.",
)
CONTACT = Wording(
    "加賀市 こども家庭センター 電話 0761-00-0000（平日 8:30〜17:15）",
    "Kaga City child and family centre, tel. 0761-00-0000 (weekdays 8:30–17:15)",
)
DATA_LIFE_DAYS = 365


@dataclass(frozen=True)
class NoticeItem:
    key: str
    wording: Wording


@dataclass(frozen=True)
class Notice:
    version: str
    recipient: Wording
    scopes: tuple[NoticeItem, ...]
    purposes: tuple[NoticeItem, ...]
    frequency: Wording
    retention: Wording
    withdrawal: Wording
    contact: Wording

    @property
    def text(self) -> str:
        """The notice as plain text, in the order shown: what the hash is computed over."""
        lines = [
            f"notice {self.version}",
            f"受け取る者 / Recipient: {self.recipient.ja} / {self.recipient.en}",
        ]
        lines += [f"目的 / Purpose [{p.key}]: {p.wording.ja} / {p.wording.en}" for p in self.purposes]
        lines += [f"項目 / Item [{s.key}]: {s.wording.ja} / {s.wording.en}" for s in self.scopes]
        for label, wording in (
            ("取得の頻度 / Frequency", self.frequency),
            ("保存期間 / Retention", self.retention),
            ("取り消し / Withdrawal", self.withdrawal),
            ("問い合わせ先 / Contact", self.contact),
        ):
            lines.append(f"{label}: {wording.ja} / {wording.en}")
        return "\n".join(lines)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def build_notice(
    *, recipient: Wording | None, scopes: Sequence[Scope], purposes: Sequence[Purpose]
) -> Notice:
    """The notice for a request: `recipient` None is the municipality itself."""
    return Notice(
        version=NOTICE_VERSION,
        recipient=recipient or MUNICIPALITY_RECIPIENT,
        # In the catalogue's order (school records first), whatever order the request used.
        scopes=tuple(NoticeItem(s.value, SCOPE_WORDING[s]) for s in Scope if s in set(scopes)),
        purposes=tuple(NoticeItem(p.value, PURPOSE_WORDING[p]) for p in Purpose if p in set(purposes)),
        frequency=FETCH_FREQUENCY,
        retention=RETENTION,
        withdrawal=WITHDRAWAL,
        contact=CONTACT,
    )
