"""The LINE platform stand-in: the Messaging API endpoints tsunagu uses, webhooks, a phone simulator.

Wire-compatible with the published Messaging API for what tsunagu calls (push, multicast,
reply, get profile, issue link token, message quota and consumption), so line-bot-sdk v3
talks to it unchanged with `Configuration(host=...)`. Behaviour copied from the platform:

- `Authorization: Bearer <channel access token>` or 401;
- `X-Line-Retry-Key` (a UUID) on push and multicast only (400 elsewhere); a key that was
  accepted before answers 409 with `x-line-accepted-request-id`; a refused request (4xx, 429,
  an injected 500 before acceptance) does not use the key up;
- per-endpoint rate limits (sliding one-second window) and the monthly message quota, both 429;
  replies are free; blocked and non-friend recipients are not delivered and not counted;
- webhooks (follow with isUnblocked, unfollow, message, postback, accountLink) POSTed to
  tsunagu's /line/webhook with `x-line-signature` = Base64(HMAC-SHA256(channel secret, body));
  failed deliveries are redelivered with `deliveryContext.isRedelivery = true`;
- the account-link dialog (`/dialog/bot/accountLink?linkToken=…&nonce=…`, which is
  access.line.me on the real platform): link tokens last 10 minutes and work once.

Assumed where the platform does not publish it: error wording beyond the documented examples,
and that a push to an id the channel has never seen is a 400.

Knobs for tests and benchmarks live under /_control (JSON; no token, loopback only):
rate limits, quota, fault injection (500 before or after accepting, delays), users, events,
redelivery. The simulator pages (/, /phone/{user}) post plain forms and work without
JavaScript; they carry no CSRF token because the stand-in has no sessions or cookies to abuse.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from mocks.line.state import (
    JST,
    Channel,
    Config,
    Delivery,
    Fault,
    FaultKind,
    Friendship,
    PendingRedelivery,
    User,
)
from mocks.line.validation import Problems, check_multicast, check_push, check_reply

DEMO_SECRET = "change-me-demo-only"  # noqa: S105 - the demo channel's well-known secret
AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."
SAFE_COLOR = re.compile(r"^#[0-9A-Fa-f]{3,8}$")

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def config_from_env() -> Config:
    """The demo channel: the same secrets tsunagu reads, and tsunagu's webhook as the target."""
    base = os.environ.get("TSUNAGU_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return Config(
        channel_secret=os.environ.get("TSUNAGU_LINE_CHANNEL_SECRET", DEMO_SECRET),
        access_token=os.environ.get("TSUNAGU_LINE_CHANNEL_ACCESS_TOKEN", DEMO_SECRET),
        webhook_url=os.environ.get("LINE_STANDIN_WEBHOOK_URL", f"{base}/line/webhook"),
        test_device=os.environ.get("TSUNAGU_NOTIFY_TEST_RECIPIENT") or None,
    )


def line_error(status: int, message: str, details: Problems | None = None, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers={"x-line-request-id": uuid.uuid4().hex, **headers})


def sign(secret: str, body: bytes) -> str:
    """The platform's x-line-signature: Base64(HMAC-SHA256(channel secret, raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _safe_uri(value: object) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _safe_color(value: object) -> str | None:
    return value if isinstance(value, str) and SAFE_COLOR.match(value) else None


templates.env.filters["safe_uri"] = _safe_uri
templates.env.filters["safe_color"] = _safe_color


class ConfigPatch(BaseModel):
    """Run-time knobs; every field is optional and only the ones given change."""

    model_config = ConfigDict(extra="forbid")

    rate_limits: dict[str, int] | None = None
    monthly_quota: int | None = Field(default=None, ge=0)
    unlimited_quota: bool | None = None
    quota_used: int | None = Field(default=None, ge=0)
    webhook_url: str | None = None
    webhook_redelivery: bool | None = None
    redelivery_interval_seconds: float | None = Field(default=None, gt=0)
    reply_token_ttl_seconds: float | None = Field(default=None, gt=0)
    link_token_ttl_seconds: float | None = Field(default=None, ge=0)
    simulator_reply_wait_seconds: float | None = Field(default=None, ge=0)


class NewUsers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(default="LINE ユーザー", min_length=1, max_length=20)
    count: int = Field(default=1, ge=1, le=200_000)
    friend: bool = False
    language: str = "ja"


class UserEvent(BaseModel):
    """What a person does in the chat: the same as the simulator's buttons."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^(follow|unfollow|message|postback)$")
    text: str | None = Field(default=None, max_length=5000)
    data: str | None = Field(default=None, max_length=300)


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str
    kind: FaultKind
    count: int = Field(default=1, ge=1)
    delay_seconds: float = Field(default=0.0, ge=0)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_event_id: str


def create_app(config: Config | None = None) -> FastAPI:
    channel = Channel(config or config_from_env())
    webhook_client: dict[str, httpx.AsyncClient] = {}
    reply_waiters: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            webhook_client["client"] = client
            task = asyncio.create_task(redelivery_loop())
            try:
                yield
            finally:
                task.cancel()

    app = FastAPI(
        title="LINE platform stand-in", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.channel = channel

    # --- webhook delivery ------------------------------------------------------------------

    async def post_webhook(events: list[dict[str, Any]], *, redelivery: bool) -> int | None:
        if redelivery:
            events = [{**e, "deliveryContext": {"isRedelivery": True}} for e in events]
        body = orjson.dumps({"destination": channel.config.bot_user_id, "events": events})
        headers = {
            "content-type": "application/json; charset=utf-8",
            "x-line-signature": sign(channel.config.channel_secret, body),
            "user-agent": "LineBotWebhook/2.0",
        }
        status: int | None
        try:
            response = await webhook_client["client"].post(
                channel.config.webhook_url, content=body, headers=headers
            )
            status = response.status_code
        except httpx.HTTPError:
            status = None
        channel.deliveries.append(
            Delivery(events=events, status=status, redelivery=redelivery, at=datetime.now(UTC))
        )
        return status

    async def send_events(events: list[dict[str, Any]]) -> int | None:
        status = await post_webhook(events, redelivery=False)
        if (status is None or not 200 <= status < 300) and channel.config.webhook_redelivery:
            channel.pending_redelivery.append(PendingRedelivery(events=events))
        return status

    async def redeliver_pending() -> int:
        pending, channel.pending_redelivery = channel.pending_redelivery, []
        for item in pending:
            item.attempts += 1
            status = await post_webhook(item.events, redelivery=True)
            failed = status is None or not 200 <= status < 300
            if failed and item.attempts < channel.config.redelivery_attempts:
                channel.pending_redelivery.append(item)
        return len(pending)

    async def redelivery_loop() -> None:
        while True:
            await asyncio.sleep(channel.config.redelivery_interval_seconds)
            if channel.config.webhook_redelivery and channel.pending_redelivery:
                await redeliver_pending()

    async def act(
        user: User, kind: str, *, text: str | None = None, data: str | None = None
    ) -> dict[str, Any] | None:
        """A person's action in the chat, turned into the webhook event the platform would send."""
        event: dict[str, Any] | None = None
        if kind == "follow" and user.friendship is not Friendship.friend:
            unblocked = user.friendship is Friendship.blocked
            user.friendship = Friendship.friend
            event = channel.event("follow", user.user_id, follow={"isUnblocked": unblocked})
        elif kind == "unfollow" and user.friendship is Friendship.friend:
            user.friendship, user.ever_blocked = Friendship.blocked, True
            event = channel.event("unfollow", user.user_id, reply=False)
        elif kind == "message" and user.friendship is Friendship.friend and text:
            message = {
                "id": str(secrets.randbits(63)),
                "type": "text",
                "quoteToken": secrets.token_urlsafe(24),
                "text": text,
            }
            channel.record_user_message(user.user_id, {"type": "text", "text": text})
            event = channel.event("message", user.user_id, message=message)
        elif kind == "postback" and user.friendship is Friendship.friend and data is not None:
            if text:
                channel.record_user_message(user.user_id, {"type": "text", "text": text})
            event = channel.event("postback", user.user_id, postback={"data": data})
        if event is not None:
            await send_events([event])
        return event

    async def wait_for_reply(event: dict[str, Any] | None) -> None:
        """Let tsunagu answer (it replies after acknowledging) before the chat is shown again."""
        token = event.get("replyToken") if event else None
        if not token:
            return
        if channel.reply_token_used(token):
            return
        answered = reply_waiters.setdefault(token, asyncio.Event())
        try:
            await asyncio.wait_for(answered.wait(), channel.config.simulator_reply_wait_seconds)
        except TimeoutError:
            pass  # tsunagu is slow or silent: show the chat as it is; the person can refresh
        finally:
            reply_waiters.pop(token, None)

    # --- Messaging API ---------------------------------------------------------------------

    def authorised(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            token.encode(), channel.config.access_token.encode()
        )

    async def json_body(request: Request) -> tuple[Any, JSONResponse | None]:
        try:
            return orjson.loads(await request.body()), None
        except orjson.JSONDecodeError:
            return None, line_error(
                400,
                "The request body has 1 error(s)",
                Problems([{"message": "Invalid JSON", "property": ""}]),
            )

    async def send(request: Request, endpoint: str, check: Callable[[Any], Problems]) -> Response:
        if not authorised(request):
            return line_error(401, AUTH_FAILED)
        retry_key = request.headers.get("x-line-retry-key")
        if retry_key is not None:
            try:
                retry_key = str(uuid.UUID(retry_key))
            except ValueError:
                return line_error(400, "The value of the X-Line-Retry-Key header is invalid")
        body, problem = await json_body(request)
        if problem is not None:
            return problem
        problems = check(body)
        if problems:
            return line_error(400, f"The request body has {len(problems)} error(s)", problems)
        fault = channel.take_fault(endpoint)
        if fault is not None and fault.kind is FaultKind.delay:
            await asyncio.sleep(fault.delay_seconds)
        if channel.over_rate_limit(endpoint):
            return line_error(429, "Too Many Requests")
        if retry_key is not None and retry_key in channel.accepted:
            earlier = channel.accepted[retry_key]
            channel.counts[f"{endpoint}:409"] += 1
            return JSONResponse(
                {"message": "The retry key is already accepted", "sentMessages": earlier.sent_messages},
                status_code=409,
                headers={
                    "x-line-request-id": uuid.uuid4().hex,
                    "x-line-accepted-request-id": earlier.request_id,
                },
            )
        if fault is not None and fault.kind is FaultKind.error:
            channel.counts[f"{endpoint}:500"] += 1
            return line_error(500, "An error occurred in the server")
        targets = [body["to"]] if isinstance(body["to"], str) else body["to"]
        if endpoint == "push" and body["to"] not in channel.users:
            return line_error(400, "Failed to send messages")
        recipients = channel.friends_among(targets)
        left = channel.quota_left()
        if left is not None and len(recipients) > left:
            channel.counts[f"{endpoint}:quota"] += 1
            return line_error(429, "You have reached your monthly limit.")
        accepted = channel.deliver(recipients, body["messages"])
        channel.quota_used += len(recipients)
        if retry_key is not None:
            channel.accepted[retry_key] = accepted
        channel.note_accepted(endpoint)
        if fault is not None and fault.kind is FaultKind.accept_then_error:
            return line_error(500, "An error occurred in the server")
        content = {"sentMessages": accepted.sent_messages} if endpoint == "push" else {}
        return JSONResponse(content, headers={"x-line-request-id": accepted.request_id})

    @app.post("/v2/bot/message/push")
    async def push(request: Request) -> Response:
        return await send(request, "push", check_push)

    @app.post("/v2/bot/message/multicast")
    async def multicast(request: Request) -> Response:
        return await send(request, "multicast", check_multicast)

    @app.post("/v2/bot/message/reply")
    async def reply(request: Request) -> Response:
        if not authorised(request):
            return line_error(401, AUTH_FAILED)
        if "x-line-retry-key" in request.headers:
            return line_error(400, "X-Line-Retry-Key is not supported for this endpoint")
        body, problem = await json_body(request)
        if problem is not None:
            return problem
        problems = check_reply(body)
        if problems:
            return line_error(400, f"The request body has {len(problems)} error(s)", problems)
        if channel.over_rate_limit("reply"):
            return line_error(429, "Too Many Requests")
        user_id = channel.use_reply_token(body["replyToken"])
        if user_id is None:
            return line_error(400, "Invalid reply token")
        accepted = channel.deliver(channel.friends_among([user_id]), body["messages"])
        channel.note_accepted("reply")
        if body["replyToken"] in reply_waiters:
            reply_waiters[body["replyToken"]].set()
        return JSONResponse(
            {"sentMessages": accepted.sent_messages}, headers={"x-line-request-id": accepted.request_id}
        )

    @app.get("/v2/bot/profile/{user_id}")
    async def profile(request: Request, user_id: str) -> Response:
        if not authorised(request):
            return line_error(401, AUTH_FAILED)
        if channel.over_rate_limit("profile"):
            return line_error(429, "Too Many Requests")
        user = channel.users.get(user_id)
        if user is None or user.friendship is not Friendship.friend:
            return line_error(404, "Not found")
        return JSONResponse(
            {"displayName": user.display_name, "userId": user.user_id, "language": user.language}
        )

    @app.post("/v2/bot/user/{user_id}/linkToken")
    async def link_token(request: Request, user_id: str) -> Response:
        if not authorised(request):
            return line_error(401, AUTH_FAILED)
        if channel.over_rate_limit("link_token"):
            return line_error(429, "Too Many Requests")
        user = channel.users.get(user_id)
        if user is None or user.friendship is not Friendship.friend:
            return line_error(400, "The user has not added the LINE Official Account as a friend")
        return JSONResponse({"linkToken": channel.issue_link_token(user_id)})

    @app.get("/v2/bot/message/quota")
    async def quota(request: Request) -> Response:
        if not authorised(request):
            return line_error(401, AUTH_FAILED)
        if channel.over_rate_limit("quota"):
            return line_error(429, "Too Many Requests")
        channel.quota_left()
        limit = channel.config.monthly_quota
        return JSONResponse({"type": "none"} if limit is None else {"type": "limited", "value": limit})

    @app.get("/v2/bot/message/quota/consumption")
    async def quota_consumption(request: Request) -> Response:
        if not authorised(request):
            return line_error(401, AUTH_FAILED)
        if channel.over_rate_limit("quota_consumption"):
            return line_error(429, "Too Many Requests")
        channel.quota_left()
        return JSONResponse({"totalUsage": channel.quota_used})

    # --- control API (tests, benchmarks, operators of the demo) ----------------------------

    def config_view() -> dict[str, Any]:
        c = channel.config
        return {
            "webhook_url": c.webhook_url,
            "bot_user_id": c.bot_user_id,
            "rate_limits": c.rate_limits,
            "monthly_quota": c.monthly_quota,
            "quota_used": channel.quota_used,
            "webhook_redelivery": c.webhook_redelivery,
            "redelivery_interval_seconds": c.redelivery_interval_seconds,
            "reply_token_ttl_seconds": c.reply_token_ttl_seconds,
            "link_token_ttl_seconds": c.link_token_ttl_seconds,
            "simulator_reply_wait_seconds": c.simulator_reply_wait_seconds,
        }

    @app.get("/_control/config")
    async def get_config() -> dict[str, Any]:
        return config_view()

    @app.patch("/_control/config")
    async def patch_config(patch: ConfigPatch) -> dict[str, Any]:
        c = channel.config
        changes = patch.model_dump(exclude_unset=True)
        if "rate_limits" in changes:
            c.rate_limits.update(changes.pop("rate_limits"))
        if changes.pop("unlimited_quota", False):
            c.monthly_quota = None
        if "quota_used" in changes:
            channel.quota_used = changes.pop("quota_used")
        for name, value in changes.items():
            setattr(c, name, value)
        return config_view()

    @app.post("/_control/reset")
    async def reset() -> dict[str, Any]:
        channel.reset()
        return config_view()

    @app.post("/_control/users")
    async def new_users(spec: NewUsers) -> dict[str, list[str]]:
        ids = [
            channel.add_user(
                spec.display_name if spec.count == 1 else f"{spec.display_name} {i + 1}",
                friend=spec.friend,
                language=spec.language,
            ).user_id
            for i in range(spec.count)
        ]
        return {"user_ids": ids}

    @app.get("/_control/users")
    async def list_users() -> list[dict[str, str]]:
        return [
            {"user_id": u.user_id, "display_name": u.display_name, "friendship": u.friendship.value}
            for u in channel.users.values()
        ]

    @app.get("/_control/users/{user_id}/chat")
    async def chat_log(user_id: str) -> Response:
        if user_id not in channel.users:
            return line_error(404, "Not found")
        return JSONResponse(
            [
                {"sender": e.sender, "message": e.message, "at": e.at.isoformat(), "request_id": e.request_id}
                for e in channel.chats[user_id]
            ]
        )

    @app.post("/_control/users/{user_id}/events")
    async def user_event(user_id: str, spec: UserEvent) -> Response:
        user = channel.users.get(user_id)
        if user is None:
            return line_error(404, "Not found")
        event = await act(user, spec.type, text=spec.text, data=spec.data)
        if event is None:
            return line_error(409, f"{spec.type} does not apply to a user who is {user.friendship.value}")
        last = channel.deliveries[-1]
        return JSONResponse({"event": event, "webhook_status": last.status})

    @app.post("/_control/faults")
    async def add_fault(spec: FaultSpec) -> dict[str, int]:
        channel.faults.append(Fault(spec.endpoint, spec.kind, spec.count, spec.delay_seconds))
        return {"faults": len(channel.faults)}

    @app.delete("/_control/faults")
    async def clear_faults() -> dict[str, int]:
        channel.faults.clear()
        return {"faults": 0}

    @app.get("/_control/webhook/deliveries")
    async def deliveries() -> list[dict[str, Any]]:
        return [
            {"status": d.status, "redelivery": d.redelivery, "at": d.at.isoformat(), "events": d.events}
            for d in channel.deliveries
        ]

    @app.post("/_control/webhook/redeliver")
    async def redeliver() -> dict[str, int]:
        return {"redelivered": await redeliver_pending()}

    @app.post("/_control/webhook/replay")
    async def replay(spec: Replay) -> Response:
        for delivery in channel.deliveries:
            for event in delivery.events:
                if event["webhookEventId"] == spec.webhook_event_id:
                    return JSONResponse({"webhook_status": await post_webhook([event], redelivery=True)})
        return line_error(404, "Not found")

    @app.get("/_control/counts")
    async def counts() -> dict[str, int]:
        """Requests by endpoint and answer (cheap enough to poll while sending)."""
        return dict(channel.counts)

    @app.get("/_control/summary")
    async def summary(contains: str | None = None) -> dict[str, Any]:
        return channel.summary(contains)

    # --- the account-link dialog (access.line.me on the real platform) ---------------------

    @app.get("/dialog/bot/accountLink", response_class=HTMLResponse)
    async def account_link_dialog(request: Request, linkToken: str = "", nonce: str = "") -> Response:
        token, problem = channel.link_token_problem(linkToken)
        user = channel.users.get(token.user_id) if token else None
        return templates.TemplateResponse(
            request,
            "account_link.html",
            {"user": user, "problem": problem, "link_token": linkToken, "nonce": nonce},
            status_code=400 if problem or not nonce else 200,
        )

    @app.post("/dialog/bot/accountLink")
    async def account_link_confirm(
        link_token: Annotated[str, Form(alias="linkToken")], nonce: Annotated[str, Form()]
    ) -> Response:
        token, problem = channel.link_token_problem(link_token)
        if token is None:
            return HTMLResponse("unknown link token / 連携トークンが見つかりません", status_code=400)
        token.used = True
        # The platform tells the bot either way; "failed" carries the nonce so it can clean up.
        result = "failed" if problem else "ok"
        event = channel.event("accountLink", token.user_id, link={"result": result, "nonce": nonce})
        await send_events([event])
        await wait_for_reply(event)
        return RedirectResponse(f"/phone/{token.user_id}", status_code=303)

    # --- the phone simulator ---------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        return templates.TemplateResponse(
            request,
            "index.html",
            {
                "users": list(channel.users.values())[:200],
                "total": len(channel.users),
                "config": config_view(),
            },
        )

    @app.post("/users")
    async def add_user(display_name: Annotated[str, Form(min_length=1, max_length=20)]) -> Response:
        user = channel.add_user(display_name.strip() or "LINE ユーザー")
        return RedirectResponse(f"/phone/{user.user_id}", status_code=303)

    def find_user(user_id: str) -> User | None:
        return channel.users.get(user_id)

    @app.get("/phone/{user_id}", response_class=HTMLResponse)
    async def phone(request: Request, user_id: str) -> Response:
        user = find_user(user_id)
        if user is None:
            return HTMLResponse("no such user / ユーザーが見つかりません", status_code=404)
        chat = channel.chats[user_id]
        last_bot = next((e for e in reversed(chat) if e.sender == "bot"), None)
        quick = last_bot.message.get("quickReply", {}).get("items", []) if last_bot else []
        return templates.TemplateResponse(
            request,
            "phone.html",
            {
                "user": user,
                "chat": chat,
                "quick_replies": quick,
                "jst": JST,
                "friend": user.friendship is Friendship.friend,
            },
        )

    @app.post("/phone/{user_id}/{action}")
    async def phone_action(
        user_id: str,
        action: str,
        text: Annotated[str | None, Form(max_length=5000)] = None,
        data: Annotated[str | None, Form(max_length=300)] = None,
    ) -> Response:
        user = find_user(user_id)
        kinds = {"follow": "follow", "block": "unfollow", "say": "message", "postback": "postback"}
        if user is None or action not in kinds:
            return HTMLResponse("not found / 見つかりません", status_code=404)
        event = await act(user, kinds[action], text=(text or "").strip() or None, data=data)
        await wait_for_reply(event)
        return RedirectResponse(f"/phone/{user_id}#latest", status_code=303)

    return app
