"""Stand-in for a school learning platform (学習 platform, e.g. まなびポケット).

Assumed interface (modelled on platforms that export per school, not per child):
- `POST /oauth/token`: OAuth 2.0 client credentials (HTTP Basic).
- `GET /v1/schools/{school}/{resource}?updated_since&cursor&limit` → `{"data": [...],
  "next_cursor": "…" | null}`: every record of the school changed after `updated_since`,
  oldest change first, keyset-paged by an opaque cursor. There is no filter by student: the
  platform pages whole schools. Resources: learning-activity (weekly sign-in days and minutes),
  submissions (assignment, due and submit time), mood-checkins (心の天気: 晴れ / くもり / 雨 /
  かみなり with an optional comment).
- `/_control/…`: the fault knobs (mocks/faults.py).
"""

from __future__ import annotations

import base64
import bisect
import os
import secrets
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import FastAPI, Form, Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response

from mocks.faults import StandInState, add_fault_middleware, control_router, drifted, json_response
from mocks.school_data import Record, SchoolRecords

RESOURCES = ("learning-activity", "submissions", "mood-checkins")
DRIFT_FIELDS = {
    "learning-activity": ("weekStart", "weekStart"),
    "submissions": ("assignmentId", "dueAt"),
    "mood-checkins": ("date", "weather"),
}
DEMO_CLIENT_ID = "tsunagu"
DEMO_CLIENT_SECRET = "change-me-demo-only"  # noqa: S105 - the demo default, as in app settings


def _encode(record: Record) -> str:
    return _cursor(record["updatedAt"].isoformat(), record["id"])


def _cursor(changed: str, record_id: str) -> str:
    return base64.urlsafe_b64encode(f"{changed}|{record_id}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, _, record_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(stamp), record_id
    except ValueError as exc:
        raise HTTPException(400, "bad cursor") from exc


def create_app(
    data: SchoolRecords | None = None,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str | None = None,
) -> FastAPI:
    if data is None:
        from mocks.world_data import demo_school_records

        data = demo_school_records()
    secret = client_secret or os.environ.get("TSUNAGU_SCHOOL_PLATFORM_CLIENT_SECRET", DEMO_CLIENT_SECRET)
    state = StandInState()
    app = FastAPI(title="学習プラットフォーム stand-in (school platform)")
    app.state.data = data
    app.state.stand_in = state
    app.include_router(control_router(state))
    add_fault_middleware(app, state, data_prefixes=("/v1/",))

    @app.post("/oauth/token")
    def token(grant_type: Annotated[str, Form()], authorization: Annotated[str, Header()] = "") -> Response:
        try:
            given = base64.b64decode(authorization.removeprefix("Basic ")).decode()
        except ValueError:
            given = ""
        given_id, _, given_secret = given.partition(":")
        if grant_type != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not (secrets.compare_digest(given_id, client_id) and secrets.compare_digest(given_secret, secret)):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse(
            {"access_token": state.issue_token(), "token_type": "Bearer", "expires_in": int(state.token_ttl)}
        )

    @app.get("/v1/schools/{school}/{resource}")
    def records(
        school: str,
        resource: str,
        updated_since: datetime | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=50_000)] = 1000,
    ) -> Response:
        if resource not in RESOURCES:
            raise HTTPException(404, f"unknown resource {resource}")
        state.record(path=f"/v1/schools/{school}/{resource}", resource=resource, students=None)
        knobs = state.faults
        packed = None if knobs.alters_pages(resource) else data.packed(resource, school)
        if packed is not None:
            positions = packed.select(since=updated_since)
            if cursor is not None:
                positions = positions[positions >= packed.after(*_decode(cursor))]
            listed = packed.json_list(positions[:limit])
            last = orjson.loads(packed.record(int(positions[limit - 1]))) if len(positions) > limit else None
            following = orjson.dumps(_cursor(last["updatedAt"], last["id"]) if last else None)
            return Response(
                b'{"data":' + listed + b',"next_cursor":' + following + b"}", media_type="application/json"
            )
        ordered = data.query(resource, school, since=updated_since)
        start = 0
        if cursor is not None:
            after = _decode(cursor)
            start = bisect.bisect_right(ordered, after, key=lambda r: (r["updatedAt"], r["id"]))
        chosen = ordered[start : start + limit]
        more = start + limit < len(ordered)
        next_cursor = _encode(chosen[-1]) if chosen and more else None
        if not knobs.pages_faulty(resource):
            return json_response({"data": chosen, "next_cursor": next_cursor})
        if start > 0 and knobs.duplicate_across_pages:
            chosen = [ordered[start - 1], *chosen]
        if cursor is None and more and knobs.move_during_paging:
            # Records of the first page change while the client pages: with a keyset cursor
            # they are served again later (as a newer version), never skipped.
            moved, knobs.move_during_paging = knobs.move_during_paging, 0
            for record in chosen[:moved]:
                data.touch(resource, school, record["id"])
            chosen = [dict(r) for r in chosen]
        required, coded = DRIFT_FIELDS[resource]
        chosen = [drifted(r, start + i, knobs, required=required, coded=coded) for i, r in enumerate(chosen)]
        return json_response({"data": chosen, "next_cursor": next_cursor})

    return app
