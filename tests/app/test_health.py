"""Liveness and readiness answer truthfully, with the reason when not ready."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.core.db import get_engine, make_engine
from app.core.migrate import upgrade


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["x-request-id"]) == 32


async def test_readyz_ok_when_migrated(client: httpx.AsyncClient, database_url: str) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] in ("sqlite", "postgresql")


async def test_readyz_503_names_missing_schema(
    app: FastAPI, client: httpx.AsyncClient, empty_database_url: str
) -> None:
    empty = make_engine(empty_database_url)
    app.dependency_overrides[get_engine] = lambda: empty
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert "tsunagu db upgrade" in response.json()["detail"]
    upgrade(empty, "base")  # still empty: readiness never migrates by itself
    empty.dispose()


async def test_readyz_503_names_unreachable_database(app: FastAPI, client: httpx.AsyncClient) -> None:
    broken = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    app.dependency_overrides[get_engine] = lambda: broken
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unreachable:")
    broken.dispose()


async def test_unknown_path_is_json_for_programs_and_japanese_page_for_people(
    client: httpx.AsyncClient,
) -> None:
    api = await client.get("/api/v1/nothing")
    assert api.status_code == 404
    assert api.json() == {"error": "not_found", "detail": "Not Found"}
    page = await client.get("/nothing", headers={"accept": "text/html"})
    assert page.status_code == 404
    assert "ページが見つかりません" in page.text
