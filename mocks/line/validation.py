"""Request-body checks of the Messaging API, as far as tsunagu's messages need them.

The limits are the published ones (≤ 5 messages a request, text ≤ 5,000 characters, Flex
altText ≤ 1,500, a carousel ≤ 12 bubbles, quick reply ≤ 13 items, multicast 1–500 user ids).
Errors come back in the platform's shape: a message and a list of {message, property}.
"""

from __future__ import annotations

import re
from typing import Any

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
USER_IDS = re.compile(r"U[0-9a-f]{32}(?:\nU[0-9a-f]{32})*")  # a multicast's ids, one per line
MESSAGE_TYPES = {"text", "flex", "template", "image", "sticker"}


class Problems(list[dict[str, str]]):
    def add(self, prop: str, message: str) -> None:
        self.append({"property": prop, "message": message})


def check_messages(messages: Any, problems: Problems) -> None:
    if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
        problems.add("messages", "Size must be between 1 and 5")
        return
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("type") not in MESSAGE_TYPES:
            problems.add(f"{where}.type", "Must be one of the following values: " + ", ".join(MESSAGE_TYPES))
            continue
        kind = message["type"]
        if kind == "text":
            text = message.get("text")
            if not isinstance(text, str) or not text:
                problems.add(f"{where}.text", "May not be empty")
            elif len(text) > 5000:
                problems.add(f"{where}.text", "Length must be between 0 and 5000")
        elif kind in ("flex", "template"):
            limit = 1500 if kind == "flex" else 400
            alt = message.get("altText")
            if not isinstance(alt, str) or not alt:
                problems.add(f"{where}.altText", "May not be empty")
            elif len(alt) > limit:
                problems.add(f"{where}.altText", f"Length must be between 0 and {limit}")
            if kind == "flex":
                _check_flex(message.get("contents"), f"{where}.contents", problems)
            elif not isinstance(message.get("template"), dict):
                problems.add(f"{where}.template", "May not be empty")
        quick = message.get("quickReply")
        if quick is not None:
            items = quick.get("items") if isinstance(quick, dict) else None
            if not isinstance(items, list) or not 1 <= len(items) <= 13:
                problems.add(f"{where}.quickReply.items", "Size must be between 1 and 13")


def _check_flex(contents: Any, where: str, problems: Problems) -> None:
    if not isinstance(contents, dict) or contents.get("type") not in ("bubble", "carousel"):
        problems.add(f"{where}.type", "Must be one of the following values: bubble, carousel")
        return
    if contents["type"] == "carousel":
        bubbles = contents.get("contents")
        if not isinstance(bubbles, list) or not 1 <= len(bubbles) <= 12:
            problems.add(f"{where}.contents", "Size must be between 1 and 12")
        elif any(not isinstance(b, dict) or b.get("type") != "bubble" for b in bubbles):
            problems.add(f"{where}.contents", "A carousel holds bubbles only")


def check_push(body: Any) -> Problems:
    problems = Problems()
    if not isinstance(body, dict):
        problems.add("", "The request body must be a JSON object")
        return problems
    to = body.get("to")
    if not isinstance(to, str) or not USER_ID.match(to):
        problems.add("to", "The property, 'to', in the request body is invalid")
    check_messages(body.get("messages"), problems)
    return problems


def check_multicast(body: Any) -> Problems:
    problems = Problems()
    if not isinstance(body, dict):
        problems.add("", "The request body must be a JSON object")
        return problems
    to = body.get("to")
    if not isinstance(to, list) or not 1 <= len(to) <= 500:
        problems.add("to", "Size must be between 1 and 500")
    elif not all(type(u) is str and len(u) == 33 for u in to) or not USER_IDS.fullmatch("\n".join(to)):
        problems.add("to", "The property, 'to', in the request body is invalid")
    check_messages(body.get("messages"), problems)
    return problems


def check_reply(body: Any) -> Problems:
    problems = Problems()
    if not isinstance(body, dict):
        problems.add("", "The request body must be a JSON object")
        return problems
    if not isinstance(body.get("replyToken"), str) or not body["replyToken"]:
        problems.add("replyToken", "May not be empty")
    check_messages(body.get("messages"), problems)
    return problems
