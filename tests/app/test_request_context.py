"""Each request gets an id and one log line: path without its query, status and time."""

from __future__ import annotations

import logging

import httpx
import pytest


async def test_one_log_line_per_request_without_the_query(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tsunagu.http"):
        response = await client.get("/healthz?code=secret-code", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    [record] = [r for r in caplog.records if r.name == "tsunagu.http"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["path"] == "/healthz" and fields["status"] == 200 and fields["method"] == "GET"
    assert "secret-code" not in str(fields)


async def test_a_request_id_that_could_forge_log_lines_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "a b\nforged"})
    assert response.headers["x-request-id"] != "a b\nforged"
    assert len(response.headers["x-request-id"]) == 32
