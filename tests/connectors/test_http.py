"""The upstream HTTP layer on its own: what is retried, what is permanent, and the breaker."""

from __future__ import annotations

from email.utils import format_datetime

import httpx
import pytest

from app.core.errors import UpstreamError
from app.core.types import utcnow
from connectors.http import CircuitBreaker, CircuitOpen, RetryPolicy, UpstreamHttp

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002, max_retry_after=0.01)


def client(handler: httpx.MockTransport, breaker: CircuitBreaker | None = None) -> UpstreamHttp:
    return UpstreamHttp(
        name="upstream",
        base_url="http://upstream.test",
        timeout=httpx.Timeout(1),
        retry=FAST,
        breaker=breaker,
        transport=handler,
    )


async def test_a_4xx_other_than_429_is_permanent_and_not_retried() -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, json={"error": "not_found"})

    async with client(httpx.MockTransport(answer)) as http:
        with pytest.raises(UpstreamError) as raised:
            await http.json("GET", "/x")
    assert raised.value.retryable is False and "not_found" in raised.value.message
    assert len(calls) == 1


async def test_retry_after_as_an_http_date_is_honoured_then_the_answer_arrives() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"retry-after": format_datetime(utcnow(), usegmt=True)}),
            httpx.Response(503),
            httpx.Response(200, content=b'{"ok": tr'),  # cut off: retried like a 5xx
            httpx.Response(200, json={"ok": True}),
        ]
    )
    async with client(httpx.MockTransport(lambda _request: next(answers))) as http:
        body, _ = await http.json("GET", "/x")
        assert body == {"ok": True}
        assert http.stats.retries == 3


async def test_the_breaker_opens_after_repeated_failures_and_probes_after_the_cool_down() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, reset_after=10, clock=lambda: now[0])
    healthy = [False]

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}) if healthy[0] else httpx.Response(500)

    async with client(httpx.MockTransport(answer), breaker) as http:
        with pytest.raises(UpstreamError):
            await http.json("GET", "/x")  # 3 failed attempts open the circuit, the 4th fails fast
        with pytest.raises(CircuitOpen):
            await http.json("GET", "/x")
        now[0] = 11.0
        healthy[0] = True
        body, _ = await http.json("GET", "/x")  # the probe succeeds and closes the circuit
        assert body == {} and breaker.opened_at is None
