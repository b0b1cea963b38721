"""Every LINE message tsunagu can send, built from fixed templates (Japanese first, English second).

Nothing here takes a screening result, an alert, a category or a risk: the builders accept
only the wording of the notice, support resources and the contact to ask, so no message can
reveal or imply a judgment about a child (DOMAIN.md lesson 12). Every message that is not a
one-line acknowledgement names whom to ask (lesson 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

Message = dict[str, Any]

# The platform's limits (UPSTREAMS.md): checked before anything is queued.
MAX_TEXT = 5000
MAX_ALT_TEXT = 1500
MAX_BUBBLES = 12
MAX_MESSAGES = 5
MUTED = "#555555"


@dataclass(frozen=True)
class Contact:
    """Whom to ask: the department that answers questions about this message."""

    ja: str
    en: str


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, "wrap": True, **style}


def _postback(label: str, data: str, display: str | None = None, *, primary: bool = False) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "postback", "label": label, "data": data}
    if display:
        action["displayText"] = display
    return {
        "type": "button",
        "action": action,
        "style": "primary" if primary else "secondary",
        "height": "sm",
    }


def _uri(label: str, uri: str, *, primary: bool = False) -> dict[str, Any]:
    return {
        "type": "button",
        "action": {"type": "uri", "label": label, "uri": uri},
        "style": "primary" if primary else "link",
        "height": "sm",
    }


def contact_box(contact: Contact) -> dict[str, Any]:
    return {
        "type": "box",
        "layout": "vertical",
        "contents": [
            _text(f"お問い合わせ: {contact.ja}", size="xs", color=MUTED),
            _text(f"Contact: {contact.en}", size="xs", color=MUTED),
        ],
    }


def _bubble(
    title_ja: str, title_en: str, lines: Sequence[str], buttons: Sequence[dict[str, Any]], contact: Contact
) -> dict[str, Any]:
    return {
        "type": "bubble",
        "body": {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "contents": [
                _text(title_ja, weight="bold", size="lg"),
                _text(title_en, size="sm", color=MUTED),
                *(_text(line, size="sm") for line in lines),
                {"type": "separator", "margin": "md"},
                contact_box(contact),
            ],
        },
        "footer": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": list(buttons)},
    }


def flex(alt_text: str, contents: dict[str, Any]) -> Message:
    return {"type": "flex", "altText": alt_text[:MAX_ALT_TEXT], "contents": contents}


def text(value: str) -> Message:
    return {"type": "text", "text": value}


def menu(*, linked: bool, contact: Contact) -> Message:
    """The small menu: find support, notice settings, and link or unlink."""
    link_button = (
        _postback("連携を解除 / Unlink", "action=unlink", "連携を解除")
        if linked
        else _postback("連携する / Link", "action=link", "連携する")
    )
    return flex(
        "メニュー / Menu",
        _bubble(
            "メニュー",
            "Menu",
            [],
            [
                _postback("相談先を探す / Find support", "action=find", "相談先を探す", primary=True),
                _postback("お知らせの設定 / Notices", "action=settings", "お知らせの設定"),
                link_button,
            ],
            contact,
        ),
    )


def welcome(*, contact: Contact, municipality: str) -> list[Message]:
    return [
        text(
            f"{municipality}の公式アカウントです。地域の相談先や支援制度のお知らせを、"
            "すべてのご家庭に同じ内容でお届けします。\n"
            f"This is the official account of {municipality}. We send every family the same news "
            "about local support and places to turn to.\n"
            f"お問い合わせ / Contact: {contact.ja} / {contact.en}"
        ),
        menu(linked=False, contact=contact),
    ]


def automatic_answer(*, linked: bool, contact: Contact) -> list[Message]:
    return [
        text(
            "このアカウントは自動でお返事しています。ご相談は下のメニューの「相談先を探す」から、"
            "またはお電話でどうぞ。\n"
            "This account answers automatically. To talk to someone, use 'Find support' below "
            "or call us.\n"
            f"{contact.ja}\n{contact.en}"
        ),
        menu(linked=linked, contact=contact),
    ]


def notice_settings(*, enabled: bool, contact: Contact) -> Message:
    state_ja, state_en = ("受け取る", "on") if enabled else ("止めている", "off")
    return flex(
        "お知らせの設定 / Notice settings",
        _bubble(
            "お知らせの設定",
            "Notice settings",
            [f"いまの設定: {state_ja}", f"Currently: {state_en}"],
            [
                _postback("受け取る / On", "action=notices&on=1", "お知らせを受け取る", primary=not enabled),
                _postback("止める / Off", "action=notices&on=0", "お知らせを止める", primary=enabled),
            ],
            contact,
        ),
    )


def notices_changed(*, enabled: bool, contact: Contact) -> list[Message]:
    if enabled:
        return [
            text("お知らせを受け取る設定にしました。\nNotices are on."),
            menu(linked=False, contact=contact),
        ]
    return [
        text(
            "お知らせを止めました。いつでも「お知らせの設定」から戻せます。\n"
            "Notices are off. Turn them back on any time."
        )
    ]


def link_invitation(*, link_url: str, contact: Contact) -> Message:
    return flex(
        "アカウント連携 / Link your account",
        _bubble(
            "アカウント連携",
            "Link your account",
            [
                "保護者の方はマイナンバーカードで、生徒のみなさんは学校でもらったコードでサインインして、"
                "このLINEとつなぎます。リンクは10分間有効です。",
                "Guardians sign in with their My Number card, students with the code from school, "
                "to link this LINE account. The link works for 10 minutes.",
            ],
            [_uri("サインインして連携 / Sign in and link", link_url, primary=True)],
            contact,
        ),
    )


def confirm_unlink(*, contact: Contact) -> Message:
    return flex(
        "連携の解除 / Unlink",
        _bubble(
            "連携を解除しますか？",
            "Unlink this LINE account?",
            [
                "解除すると、このLINEとあなたのアカウントのつながりを消します。",
                "The link is deleted at once.",
            ],
            [
                _postback("解除する / Unlink", "action=unlink&confirm=1", "解除する", primary=True),
                _postback("やめる / Cancel", "action=menu", "やめる"),
            ],
            contact,
        ),
    )


def unlinked(*, contact: Contact) -> list[Message]:
    return [text("連携を解除しました。\nThe link has been removed."), menu(linked=False, contact=contact)]


def link_result(*, ok: bool, contact: Contact) -> list[Message]:
    if ok:
        return [text("連携しました。\nYour accounts are linked."), menu(linked=True, contact=contact)]
    return [
        text("連携できませんでした。もう一度お試しください。\nLinking did not complete; please try again."),
        menu(linked=False, contact=contact),
    ]


def link_url(base_url: str, link_token: str) -> str:
    return f"{base_url.rstrip('/')}/line/link?{urlencode({'linkToken': link_token})}"


@dataclass(frozen=True)
class ResourceCard:
    """What a resource bubble shows: directory facts only, never anything about the reader."""

    name_ja: str
    name_en: str
    kind_ja: str
    area: str
    hours_ja: str
    contact: str
    url: str


def resource_bubble(card: ResourceCard) -> dict[str, Any]:
    lines = [f"{card.kind_ja}・{card.area}"]
    if card.hours_ja:
        lines.append(card.hours_ja)
    if card.contact:
        lines.append(f"連絡先 / Contact: {card.contact}")
    return {
        "type": "bubble",
        "size": "kilo",
        "body": {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "contents": [
                _text(card.name_ja, weight="bold", size="md"),
                *([_text(card.name_en, size="xs", color=MUTED)] if card.name_en else []),
                *(_text(line, size="sm") for line in lines),
            ],
        },
        "footer": {"type": "box", "layout": "vertical", "contents": [_uri("詳しく / Details", card.url)]},
    }


def resource_carousel(*, cards: Sequence[ResourceCard], directory_url: str, contact: Contact) -> Message:
    """Up to 11 resources and a last bubble pointing to the whole directory and whom to ask."""
    bubbles = [resource_bubble(card) for card in cards[: MAX_BUBBLES - 1]]
    bubbles.append(
        _bubble(
            "ほかの相談先",
            "More places to turn to",
            ["地域・年齢・困りごとから探せます。", "Search by area, age and need."],
            [_uri("相談先の一覧 / Directory", directory_url, primary=True)],
            contact,
        )
    )
    return flex("地域の相談先 / Local support", {"type": "carousel", "contents": bubbles})


@dataclass(frozen=True)
class Guidance:
    """A fixed template of personalised information: one support scheme, in general words.

    It says what the scheme is and how to apply, never why this family is told (no benefit,
    record or judgment behind the choice appears), and who answers questions about it.
    """

    title_ja: str
    title_en: str
    lines: tuple[str, ...]


ASKED_FOR_GUIDANCE = (
    "ご家庭に合った支援制度のご案内を希望された方にお送りしています。",
    "You get this because you asked for news of schemes that may fit your family.",
)


def guidance(*, template: Guidance, details_url: str, contact: Contact) -> Message:
    return flex(
        f"{template.title_ja} / {template.title_en}",
        _bubble(
            template.title_ja,
            template.title_en,
            [*template.lines, *ASKED_FOR_GUIDANCE],
            [_uri("詳しく・申請のしかた / Details", details_url, primary=True)],
            contact,
        ),
    )
