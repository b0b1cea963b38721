"""The LINE Messaging API through line-bot-sdk v3 (async): the same code path for the stand-in and
the real platform; only `Configuration(host=…)` differs.

Messages are plain dicts in the platform's JSON shape (what the outbox stores and what the
payload-scanning test reads); the SDK models are built from them at the last moment.
Failures become one small vocabulary the sender acts on: sent, already accepted (409, which
counts as sent), rate limited, quota exhausted, worth retrying (5xx, timeouts, connection
errors), or not worth retrying (other 4xx).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    MulticastRequest,
    PushMessageRequest,
    QuotaType,
    ReplyMessageRequest,
)
from linebot.v3.messaging import (
    Message as SdkMessage,
)
from linebot.v3.messaging.exceptions import ApiException

from app.core.config import Settings
from app.core.errors import UpstreamError

Message = dict[str, Any]


class Outcome(StrEnum):
    sent = "sent"
    already_sent = "already_sent"  # 409: this retry key was accepted before
    rate_limited = "rate_limited"
    quota_exhausted = "quota_exhausted"
    retry = "retry"  # 5xx, timeout, connection error: try again with the same retry key
    refused = "refused"  # 4xx: the request itself is wrong; retrying cannot help


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    status: int | None = None
    detail: str | None = None


def _classify(exc: ApiException) -> Result:
    status = int(exc.status or 0)
    message = ""
    if exc.body:
        try:
            message = str(orjson.loads(exc.body).get("message", ""))
        except (orjson.JSONDecodeError, AttributeError):
            message = ""
    if status == 409:
        return Result(Outcome.already_sent, status)
    if status == 429:
        exhausted = "monthly limit" in message.lower()
        return Result(Outcome.quota_exhausted if exhausted else Outcome.rate_limited, status, message)
    if status >= 500 or status == 0:
        return Result(Outcome.retry, status, message or exc.reason)
    return Result(Outcome.refused, status, message or exc.reason)


@functools.lru_cache(maxsize=64)
def _sdk_messages(serialized: bytes) -> tuple[SdkMessage, ...]:
    return tuple(SdkMessage.from_dict(m) for m in orjson.loads(serialized))


class _Multicast(MulticastRequest):  # type: ignore[misc]  # the SDK ships no types
    """A multicast request that gives the SDK its wire form directly. The SDK's own `to_dict`
    walks the 500 recipient ids one by one through pydantic v1 (about 3 ms a request, half of
    what a sender spends on one), although they are plain strings that need no conversion."""

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.to, "messages": [message.to_dict() for message in self.messages]}


class Line:
    """One async API client; use as `async with Line(settings) as line:`."""

    def __init__(self, settings: Settings) -> None:
        self._configuration = Configuration(
            host=settings.line_api_url,
            access_token=settings.line_channel_access_token.get_secret_value(),
        )
        self._timeout = settings.upstream_timeout_seconds
        self._client: AsyncApiClient | None = None
        self._api: AsyncMessagingApi | None = None

    async def __aenter__(self) -> Self:
        self._client = AsyncApiClient(self._configuration)
        self._api = AsyncMessagingApi(self._client)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def api(self) -> AsyncMessagingApi:
        assert self._api is not None, "use Line as an async context manager"
        return self._api

    async def _call(self, call: Any) -> Result:
        try:
            await call
        except ApiException as exc:
            return _classify(exc)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Result(Outcome.retry, None, type(exc).__name__)
        return Result(Outcome.sent, 200)

    async def multicast(self, *, to: list[str], messages: list[Message], retry_key: str) -> Result:
        # Built without re-validating the 500 recipient ids one by one (the SDK's pydantic v1
        # models spend ~10 ms per request on that, a third of what a sender can do per second):
        # they come from our own outbox and LINE checks them again. The messages are validated,
        # once per distinct notice.
        request = _Multicast.construct(to=to, messages=list(_sdk_messages(orjson.dumps(messages))))
        return await self._call(
            self.api.multicast(request, x_line_retry_key=retry_key, _request_timeout=self._timeout)
        )

    async def push(self, *, to: str, messages: list[Message], retry_key: str) -> Result:
        request = PushMessageRequest.from_dict({"to": to, "messages": messages})
        return await self._call(
            self.api.push_message(request, x_line_retry_key=retry_key, _request_timeout=self._timeout)
        )

    async def reply(self, *, reply_token: str, messages: list[Message]) -> Result:
        request = ReplyMessageRequest.from_dict({"replyToken": reply_token, "messages": messages})
        return await self._call(self.api.reply_message(request, _request_timeout=self._timeout))

    async def issue_link_token(self, *, user_id: str) -> str:
        try:
            response = await self.api.issue_link_token(user_id, _request_timeout=self._timeout)
        except ApiException as exc:
            result = _classify(exc)
            raise UpstreamError(
                f"LINE refused a link token ({result.status})", retryable=result.outcome is Outcome.retry
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError("LINE did not answer", retryable=True) from exc
        return str(response.link_token)

    async def quota_left(self) -> int | None:
        """Messages left this month; None when the plan has no limit."""
        try:
            quota, used = await asyncio.gather(
                self.api.get_message_quota(_request_timeout=self._timeout),
                self.api.get_message_quota_consumption(_request_timeout=self._timeout),
            )
        except ApiException as exc:
            raise UpstreamError(f"LINE quota unavailable ({exc.status})", retryable=True) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError("LINE did not answer", retryable=True) from exc
        if quota.type == QuotaType.NONE or quota.value is None:
            return None
        return max(0, int(quota.value) - int(used.total_usage))
