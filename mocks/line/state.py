"""The LINE stand-in's memory: one channel, its fake users and chats, limits, quota, tokens, faults.

Everything lives in one process and is lost on restart, like a fresh channel. All mutation
happens on the event loop without awaiting in between, so each API call is atomic: two
requests with the same retry key can never both be accepted.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import orjson

JST = timezone(timedelta(hours=9), "JST")

# Per-channel, per-endpoint request limits of the real platform (requests per second).
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "push": 2000,
    "multicast": 200,
    "reply": 2000,
    "profile": 2000,
    "link_token": 2000,
    "quota": 2000,
    "quota_consumption": 2000,
}
# The light plan of LINE公式アカウント in Japan; the free plan is 200, the standard plan 30,000.
DEFAULT_MONTHLY_QUOTA = 5000
DEMO_USERS = ("山田 花子", "佐藤 健", "Maria Santos")
TEST_DEVICE_NAME = "市役所 テスト端末"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_user_id() -> str:
    """A LINE user id: 'U' and 32 lowercase hex digits."""
    return "U" + secrets.token_hex(16)


def new_event_id() -> str:
    """A webhookEventId: a ULID (48-bit milliseconds, 80 random bits, Crockford base32)."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def fingerprint(message: dict[str, Any]) -> str:
    """Identifies one message's content, so the same message delivered twice can be counted."""
    return hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class Friendship(StrEnum):
    none = "none"  # never added the account
    friend = "friend"
    blocked = "blocked"  # the user blocked the account: the platform's `unfollow`


class FaultKind(StrEnum):
    error = "error"  # answer 500 without accepting anything
    accept_then_error = "accept_then_error"  # accept and deliver, then answer 500 (lost response)
    delay = "delay"  # wait, then act normally: a client with a short timeout sees a timeout


@dataclass
class User:
    user_id: str
    display_name: str
    language: str = "ja"
    friendship: Friendship = Friendship.none
    ever_blocked: bool = False


@dataclass(frozen=True)
class ChatEntry:
    sender: str  # "bot" or "user"
    message: dict[str, Any]
    at: datetime
    request_id: str | None = None
    fingerprint: str = ""


@dataclass
class Accepted:
    request_id: str
    sent_messages: list[dict[str, str]]


@dataclass
class Token:
    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class Fault:
    endpoint: str
    kind: FaultKind
    remaining: int
    delay_seconds: float = 0.0


@dataclass
class Delivery:
    """One POST of a webhook body to tsunagu, kept for the control API and for redelivery."""

    events: list[dict[str, Any]]
    status: int | None  # None: could not connect
    redelivery: bool
    at: datetime


@dataclass
class Config:
    channel_secret: str
    access_token: str
    webhook_url: str
    bot_user_id: str = field(default_factory=new_user_id)
    rate_limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    monthly_quota: int | None = DEFAULT_MONTHLY_QUOTA
    webhook_redelivery: bool = True
    redelivery_interval_seconds: float = 10.0
    redelivery_attempts: int = 5
    reply_token_ttl_seconds: float = 60.0
    link_token_ttl_seconds: float = 600.0
    # How long a simulator action waits for tsunagu's reply before showing the chat again.
    simulator_reply_wait_seconds: float = 2.0
    demo_users: tuple[str, ...] = DEMO_USERS
    # The municipality's own test phone, already a friend of the account (the real one is a
    # staff member's phone that followed it): staff send notices there to preview them.
    test_device: str | None = None


@dataclass
class PendingRedelivery:
    events: list[dict[str, Any]]
    attempts: int = 0


class Channel:
    """One Messaging API channel with its users; the HTTP layer calls these methods."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.users: dict[str, User] = {}
        self.chats: dict[str, list[ChatEntry]] = {}
        self.accepted: dict[str, Accepted] = {}
        self.windows: dict[str, deque[float]] = {}
        self.faults: list[Fault] = []
        self.link_tokens: dict[str, Token] = {}
        self.reply_tokens: dict[str, Token] = {}
        self.deliveries: list[Delivery] = []
        self.pending_redelivery: list[PendingRedelivery] = []
        self.quota_used = 0
        self.quota_month = self._month()
        self.counts: Counter[str] = Counter()
        # Wall-clock time of the first and the last accepted request per endpoint (benchmarks).
        self.accepted_span: dict[str, tuple[float, float]] = {}
        for name in self.config.demo_users:
            self.add_user(name)
        if self.config.test_device is not None:
            self.add_user(TEST_DEVICE_NAME, friend=True, user_id=self.config.test_device)

    # --- users -----------------------------------------------------------------------------

    def add_user(
        self, display_name: str, *, friend: bool = False, language: str = "ja", user_id: str | None = None
    ) -> User:
        user = User(user_id=user_id or new_user_id(), display_name=display_name, language=language)
        if friend:
            user.friendship = Friendship.friend
        self.users[user.user_id] = user
        self.chats[user.user_id] = []
        return user

    def record_user_message(self, user_id: str, message: dict[str, Any]) -> None:
        self.chats[user_id].append(ChatEntry(sender="user", message=message, at=datetime.now(UTC)))

    # --- limits ----------------------------------------------------------------------------

    def over_rate_limit(self, endpoint: str) -> bool:
        """A sliding one-second window per endpoint; refused requests do not use up the window."""
        limit = self.config.rate_limits.get(endpoint, DEFAULT_RATE_LIMITS.get(endpoint, 2000))
        now = time.monotonic()
        window = self.windows.setdefault(endpoint, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            self.counts[f"{endpoint}:429"] += 1
            return True
        window.append(now)
        return False

    @staticmethod
    def _month() -> str:
        return datetime.now(JST).strftime("%Y-%m")

    def quota_left(self) -> int | None:
        if self._month() != self.quota_month:  # the monthly count restarts on the 1st (JST)
            self.quota_month, self.quota_used = self._month(), 0
        if self.config.monthly_quota is None:
            return None
        return max(0, self.config.monthly_quota - self.quota_used)

    def take_fault(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if fault.endpoint == endpoint and fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    # --- messages --------------------------------------------------------------------------

    def note_accepted(self, endpoint: str) -> None:
        now = time.time()
        first, _ = self.accepted_span.get(endpoint, (now, now))
        self.accepted_span[endpoint] = (first, now)
        self.counts[f"{endpoint}:accepted"] += 1

    def friends_among(self, user_ids: list[str]) -> list[str]:
        users = self.users
        return [u for u in user_ids if u in users and users[u].friendship is Friendship.friend]

    def deliver(self, user_ids: list[str], messages: list[dict[str, Any]]) -> Accepted:
        """Put messages into each friend's chat; blocked and unknown users get nothing."""
        request_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        # One immutable entry per message, shared by every recipient's chat: a multicast to 500
        # costs 500 appends, not 500 objects (the benchmark runs 200 of them a second).
        entries = [ChatEntry("bot", message, now, request_id, fingerprint(message)) for message in messages]
        chats = self.chats
        for user_id in user_ids:
            chats[user_id].extend(entries)
        sent = [{"id": str(secrets.randbits(63)), "quoteToken": secrets.token_urlsafe(24)} for _ in messages]
        return Accepted(request_id=request_id, sent_messages=sent)

    # --- tokens ----------------------------------------------------------------------------

    def issue_reply_token(self, user_id: str) -> str:
        token = secrets.token_hex(16)
        self.reply_tokens[token] = Token(user_id=user_id, issued_at=time.monotonic())
        return token

    def use_reply_token(self, token: str) -> str | None:
        """The user the token answers, or None when it is unknown, used or expired."""
        entry = self.reply_tokens.get(token)
        if entry is None or entry.used:
            return None
        if time.monotonic() - entry.issued_at > self.config.reply_token_ttl_seconds:
            return None
        entry.used = True
        return entry.user_id

    def reply_token_used(self, token: str) -> bool:
        entry = self.reply_tokens.get(token)
        return entry is not None and entry.used

    def issue_link_token(self, user_id: str) -> str:
        token = secrets.token_urlsafe(24)
        self.link_tokens[token] = Token(user_id=user_id, issued_at=time.monotonic())
        return token

    def link_token_problem(self, token: str) -> tuple[Token | None, str | None]:
        """The token and, when it cannot be used, why not."""
        entry = self.link_tokens.get(token)
        if entry is None:
            return None, "unknown link token"
        if entry.used:
            return entry, "link token already used"
        if time.monotonic() - entry.issued_at > self.config.link_token_ttl_seconds:
            return entry, "link token expired"
        return entry, None

    # --- webhook events --------------------------------------------------------------------

    def event(self, kind: str, user_id: str, *, reply: bool = True, **detail: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": kind,
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "source": {"type": "user", "userId": user_id},
            "webhookEventId": new_event_id(),
            "deliveryContext": {"isRedelivery": False},
        }
        if reply:
            body["replyToken"] = self.issue_reply_token(user_id)
        body.update(detail)
        return body

    def summary(self, contains: str | None = None) -> dict[str, Any]:
        """Counts for benchmarks and tests: who got what, and how often the same thing twice."""
        recipients = delivered = duplicates = 0
        for chat in self.chats.values():
            marks = Counter(
                entry.fingerprint
                for entry in chat
                if entry.sender == "bot"
                and (contains is None or contains in orjson.dumps(entry.message).decode())
            )
            if marks:
                recipients += 1
                delivered += sum(marks.values())
                duplicates += sum(n - 1 for n in marks.values())
        return {
            "recipients": recipients,
            "delivered": delivered,
            "duplicates": duplicates,
            "quota_used": self.quota_used,
            "counts": dict(self.counts),
            "accepted_span": {k: {"first": a, "last": b} for k, (a, b) in self.accepted_span.items()},
        }
