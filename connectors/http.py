"""The resilient HTTP layer every upstream client shares: timeouts, retries, circuit breaker, tokens.

A failure is retryable when trying again may help: a transport error or timeout, 429, a 5xx,
or a body that is not whole JSON (a truncated answer). Any other 4xx is permanent. Retries back
off exponentially with full jitter and honour `Retry-After`. A circuit breaker per upstream
stops hammering a system that keeps failing: after `failure_threshold` failed attempts in a row
it fails fast for `reset_after` seconds, then lets one attempt through to probe.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from app.core.config import Settings
from app.core.errors import UpstreamError
from app.core.types import utcnow


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 5.0
    max_retry_after: float = 30.0


class CircuitOpen(UpstreamError):
    def __init__(self, upstream: str) -> None:
        super().__init__(f"{upstream}: circuit open after repeated failures", retryable=True)


@dataclass
class CircuitBreaker:
    failure_threshold: int = 8
    reset_after: float = 15.0
    failures: int = 0
    opened_at: float | None = None
    clock: Callable[[], float] = time.monotonic

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at >= self.reset_after:
            # Half-open: this call probes; the others wait another cool-down unless it succeeds.
            self.opened_at = self.clock()
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self.opened_at = self.clock()


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0


TokenFetcher = Callable[[httpx.AsyncClient], Awaitable[str]]


@dataclass
class _Token:
    value: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def upstream_timeout(settings: Settings) -> httpx.Timeout:
    """The answer's clock and the connection's apart: a hung upstream is given up on after
    `upstream_timeout_seconds`, while a connection that a busy host is slow to accept is not."""
    return httpx.Timeout(settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds)


class UpstreamHttp:
    """One upstream's HTTP client. Returns decoded JSON or raises `UpstreamError(retryable=…)`."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout: httpx.Timeout,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        token_fetcher: TokenFetcher | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 8,
    ) -> None:
        self.name = name
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.stats = Stats()
        self._token_fetcher = token_fetcher
        self._token = _Token()
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> UpstreamHttp:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _bearer(self, *, renew: bool, stale: str | None = None) -> dict[str, str]:
        if self._token_fetcher is None:
            return {}
        async with self._token.lock:
            # Concurrent requests that all saw the same expired token renew it once.
            if self._token.value is None or (renew and self._token.value == stale):
                self._token.value = await self._token_fetcher(self.http)
            return {"authorization": f"Bearer {self._token.value}"}

    async def json(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[Any, httpx.Headers]:
        """Send one request (with retries); the decoded JSON body and the response headers."""
        last_error: UpstreamError | None = None
        renewed = False
        content = orjson.dumps(body) if body is not None else None
        for attempt in range(self.retry.attempts):
            if attempt:
                self.stats.retries += 1
            if not self.breaker.allow():
                raise CircuitOpen(self.name)
            headers = {"accept": "application/json"}
            if content is not None:
                headers["content-type"] = "application/json"
            try:
                auth = await self._bearer(renew=False)
                headers.update(auth)
                self.stats.requests += 1
                response = await self.http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                last_error = UpstreamError(f"{self.name}: {type(exc).__name__}", retryable=True)
            except UpstreamError as exc:  # from the token endpoint
                if not exc.retryable:
                    raise
                last_error = exc
            else:
                last_error = None
            if last_error is not None:
                self.breaker.record_failure()
                await self._sleep(attempt, None)
                continue
            if response.status_code == 401 and self._token_fetcher is not None and not renewed:
                # The token ran out mid-run: renew once and repeat, without counting a failure.
                renewed = True
                await self._bearer(renew=True, stale=auth.get("authorization", "").removeprefix("Bearer "))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                self.breaker.record_failure()
                last_error = UpstreamError(f"{self.name}: HTTP {response.status_code}", retryable=True)
                await self._sleep(attempt, _retry_after_seconds(response))
                continue
            if response.status_code >= 400:
                # The upstream says the request itself is wrong: repeating it cannot help. The
                # upstream is healthy, so the breaker counts it as a success.
                self.breaker.record_success()
                raise UpstreamError(
                    f"{self.name}: HTTP {response.status_code} {_error_code(response)}", retryable=False
                )
            try:
                decoded = orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError:
                self.breaker.record_failure()
                last_error = UpstreamError(f"{self.name}: answer was not whole JSON", retryable=True)
                await self._sleep(attempt, None)
                continue
            self.breaker.record_success()
            return decoded, response.headers
        assert last_error is not None
        raise last_error

    async def _sleep(self, attempt: int, retry_after: float | None) -> None:
        if attempt + 1 >= self.retry.attempts:
            return
        if retry_after is not None:
            delay = min(retry_after, self.retry.max_retry_after)
        else:
            # Full jitter: spreads retries of many workers so they do not hit the upstream in step.
            delay = random.uniform(0, min(self.retry.max_delay, self.retry.base_delay * 2**attempt))  # noqa: S311
        await asyncio.sleep(delay)


def _error_code(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def client_credentials(*, client_id: str, client_secret: str, path: str = "/oauth/token") -> TokenFetcher:
    """A token fetcher for the OAuth 2.0 client-credentials grant (server-to-server upstreams)."""

    async def fetch(http: httpx.AsyncClient) -> str:
        try:
            response = await http.post(
                path,
                data={"grant_type": "client_credentials"},
                auth=httpx.BasicAuth(client_id, client_secret),
            )
        except httpx.TransportError as exc:
            raise UpstreamError(f"token: {type(exc).__name__}", retryable=True) from exc
        if response.status_code != 200:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise UpstreamError(f"token: HTTP {response.status_code}", retryable=retryable)
        try:
            return str(orjson.loads(response.content)["access_token"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise UpstreamError("token: malformed answer", retryable=True) from exc

    return fetch
