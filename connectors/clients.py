"""Typed clients of the school upstreams: the school affairs system and the learning platform.

Each pages through one resource and yields raw pages; validation happens in the sync, record
by record, so that one bad record is quarantined instead of failing its page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import httpx

from app.core.config import Settings
from app.core.errors import UpstreamError
from connectors.http import CircuitBreaker, RetryPolicy, UpstreamHttp, client_credentials, upstream_timeout

ROSTER_PATH = "/ims/oneroster/rostering/v1p2/schools"


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    total: int | None = None  # the size of the whole result, where the upstream says it


def _records(body: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(field), list):
        raise UpstreamError(f"answer has no {field!r} list", retryable=True)
    return [r if isinstance(r, dict) else {"value": r} for r in body[field]]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class SchoolAffairsClient:
    """統合型校務支援システム: the OneRoster roster and per-child record queries."""

    def __init__(self, http: UpstreamHttp, *, page_size: int = 1000) -> None:
        self.http = http
        self.page_size = page_size

    async def students(self, school: str, *, since: datetime | None) -> AsyncIterator[Page]:
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["filter"] = f"dateLastModified>'{_iso(since)}'"
        offset = 0
        while True:
            body, headers = await self.http.json(
                "GET", f"{ROSTER_PATH}/{school}/students", params={**params, "offset": offset}
            )
            users = _records(body, "users")
            total = int(headers.get("x-total-count", offset + len(users)))
            yield Page(users, total)
            offset += self.page_size
            if offset >= total or not users:
                return

    async def query(
        self,
        resource: str,
        school: str,
        students: Sequence[str],
        *,
        since: datetime | None,
        data_from: date | None = None,
    ) -> AsyncIterator[Page]:
        """Records of the named children only, about DATA_FROM or later: the request itself
        carries no one else and asks for nothing before their consent's data range."""
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["updated_since"] = _iso(since)
        offset = 0
        while True:
            body, _ = await self.http.json(
                "POST",
                f"/api/v1/schools/{school}/{resource}/query",
                params={**params, "offset": offset},
                body={"students": list(students), "data_from": data_from.isoformat() if data_from else None},
            )
            records = _records(body, "records")
            total = body.get("total")
            total = total if isinstance(total, int) else None
            yield Page(records, total)
            offset += self.page_size
            if total is None or offset >= total or not records:
                return


class SchoolPlatformClient:
    """学習 platform: whole-school keyset paging with `updated_since`."""

    def __init__(self, http: UpstreamHttp, *, page_size: int = 2000) -> None:
        self.http = http
        self.page_size = page_size

    async def records(self, resource: str, school: str, *, since: datetime | None) -> AsyncIterator[Page]:
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["updated_since"] = _iso(since)
        cursor: str | None = None
        while True:
            query = dict(params) if cursor is None else {**params, "cursor": cursor}
            body, _ = await self.http.json("GET", f"/v1/schools/{school}/{resource}", params=query)
            yield Page(_records(body, "data"))
            cursor = body.get("next_cursor")
            if not cursor:
                return


@dataclass
class SchoolClients:
    school_affairs: SchoolAffairsClient
    school_platform: SchoolPlatformClient

    async def aclose(self) -> None:
        await self.school_affairs.http.aclose()
        await self.school_platform.http.aclose()

    def stats(self) -> tuple[int, int]:
        """Requests and retries so far, over both upstreams."""
        a, p = self.school_affairs.http.stats, self.school_platform.http.stats
        return a.requests + p.requests, a.retries + p.retries


def school_clients(
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    page_size: int | None = None,
) -> SchoolClients:
    """The clients for the configured upstreams, each with its own circuit breaker."""

    def http(name: str, url: str, client_id: str, secret: str) -> UpstreamHttp:
        return UpstreamHttp(
            name=name,
            base_url=url,
            timeout=upstream_timeout(settings),
            retry=retry,
            breaker=CircuitBreaker(),
            token_fetcher=client_credentials(client_id=client_id, client_secret=secret),
            transport=transport,
        )

    affairs = http(
        "school_affairs",
        settings.school_affairs_url,
        settings.school_affairs_client_id,
        settings.school_affairs_client_secret.get_secret_value(),
    )
    platform = http(
        "school_platform",
        settings.school_platform_url,
        settings.school_platform_client_id,
        settings.school_platform_client_secret.get_secret_value(),
    )
    sizes = {} if page_size is None else {"page_size": page_size}
    return SchoolClients(SchoolAffairsClient(affairs, **sizes), SchoolPlatformClient(platform, **sizes))
