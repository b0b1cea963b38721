"""Stand-in for a school affairs system (統合型校務支援システム, e.g. C4th).

Assumed interface (the real ones are not public; shapes follow public outlines):
- `POST /oauth/token`: OAuth 2.0 client credentials (HTTP Basic), a bearer token for an hour.
- The roster as OneRoster 1.2 (Japan Profile):
  `GET /ims/oneroster/rostering/v1p2/schools/{school}/students?offset&limit&filter=dateLastModified>'…'`
  → `{"users": [...]}` with `X-Total-Count`; Japan Profile fields under `metadata.jp.*`.
- Records per resource, asked for named students only (the MIC smart-school outline's
  出欠 / 保健室利用 / 成績 resources, as a bulk query so a school's consented children fit in a
  few requests): `POST /api/v1/schools/{school}/{resource}/query?offset&limit&updated_since`
  with `{"students": [...], "data_from": "YYYY-MM-DD" | null}` → `{"records": [...], "total": N}`,
  oldest change first; `data_from` leaves out records about earlier days (mocks/school_data.py
  `data_day`: the day, the visit, the month, the week, the due day, the term or school year).
  Resources: attendance (mark + reason code 01 病気 / 02 事故 / 03 家事・家族の世話 / 09 その他 /
  21 出席停止 / 22 忌引), nurse-visits, grades, fees, school-aid (就学援助).
- `/_control/…`: the fault knobs (mocks/faults.py).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from datetime import date, datetime
from typing import Annotated

from fastapi import FastAPI, Form, Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mocks.faults import StandInState, add_fault_middleware, control_router, drifted, json_response
from mocks.school_data import Record, SchoolRecords

RESOURCES = ("attendance", "nurse-visits", "grades", "fees", "school-aid")
# For schema drift: a required field to drop and a coded field to garble, per resource.
DRIFT_FIELDS = {
    "attendance": ("mark", "reason"),
    "nurse-visits": ("visitedAt", "complaint"),
    "grades": ("subject", "term"),
    "fees": ("month", "month"),
    "school-aid": ("schoolYear", "aidStatus"),
    "students": ("birthDate", "grades"),
}
ROSTER_PATH = "/ims/oneroster/rostering/v1p2/schools"
FILTER = re.compile(r"^dateLastModified>'([^']+)'$")
DEMO_CLIENT_ID = "tsunagu"
DEMO_CLIENT_SECRET = "change-me-demo-only"  # noqa: S105 - the demo default, as in app settings


class StudentsQuery(BaseModel):
    students: list[str] = Field(max_length=1000)
    data_from: date | None = Field(
        default=None, description="only records about this day or later (a consent's data range)"
    )


def page(
    records: list[Record],
    *,
    state: StandInState,
    data: SchoolRecords,
    resource: str,
    school: str,
    offset: int,
    limit: int,
) -> list[Record]:
    """One offset page, with the paging and schema faults applied."""
    knobs = state.faults
    chosen = records[offset : offset + limit]
    if not knobs.pages_faulty(resource):
        return chosen
    if offset > 0 and knobs.duplicate_across_pages:
        chosen = [records[offset - 1], *chosen]
    if offset == 0 and len(records) > limit and knobs.move_during_paging:
        # Records of the first page change while the client pages: they move to the end of the
        # order, every later record shifts forward, and an offset client skips as many.
        moved = knobs.move_during_paging
        knobs.move_during_paging = 0
        for record in list(chosen[:moved]):
            if resource == "students":
                data.touch_student(school, record["sourcedId"])
            else:
                data.touch(resource, school, record["id"])
        chosen = [dict(r) for r in chosen]
    required, coded = DRIFT_FIELDS[resource]
    return [drifted(r, offset + i, knobs, required=required, coded=coded) for i, r in enumerate(chosen)]


def create_app(
    data: SchoolRecords | None = None,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str | None = None,
) -> FastAPI:
    if data is None:
        from mocks.world_data import demo_school_records

        data = demo_school_records()
    secret = client_secret or os.environ.get("TSUNAGU_SCHOOL_AFFAIRS_CLIENT_SECRET", DEMO_CLIENT_SECRET)
    state = StandInState()
    app = FastAPI(title="校務支援システム stand-in (school affairs)")
    app.state.data = data
    app.state.stand_in = state
    app.include_router(control_router(state))
    add_fault_middleware(app, state, data_prefixes=(ROSTER_PATH, "/api/"))

    @app.post("/oauth/token")
    def token(
        grant_type: Annotated[str, Form()],
        authorization: Annotated[str, Header()] = "",
    ) -> Response:
        try:
            given_id, _, given_secret = (
                base64.b64decode(authorization.removeprefix("Basic ")).decode().partition(":")
            )
        except ValueError:
            given_id = given_secret = ""
        if grant_type != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not (secrets.compare_digest(given_id, client_id) and secrets.compare_digest(given_secret, secret)):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse(
            {"access_token": state.issue_token(), "token_type": "Bearer", "expires_in": int(state.token_ttl)}
        )

    @app.get(ROSTER_PATH + "/{school}/students")
    def students(
        school: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        filter: str | None = None,
    ) -> Response:
        since = _filter_since(filter)
        state.record(path=f"{ROSTER_PATH}/{school}/students", resource="students", students=None)
        packed = None if state.faults.alters_pages("students") else data.packed(data.ROSTER, school)
        if packed is not None:
            positions = packed.select(since=since)
            body = packed.json_list(positions[offset : offset + limit])
            return Response(
                b'{"users":' + body + b"}",
                media_type="application/json",
                headers={"x-total-count": str(len(positions))},
            )
        users = data.students(school, since=since)
        chosen = page(
            users, state=state, data=data, resource="students", school=school, offset=offset, limit=limit
        )
        return json_response({"users": chosen}, headers={"x-total-count": str(len(users))})

    @app.post("/api/v1/schools/{school}/{resource}/query")
    def query(
        school: str,
        resource: str,
        body: StudentsQuery,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=50_000)] = 1000,
        updated_since: datetime | None = None,
    ) -> Response:
        if resource not in RESOURCES:
            raise HTTPException(404, f"unknown resource {resource}")
        state.record(
            path=f"/api/v1/schools/{school}/{resource}/query",
            resource=resource,
            students=body.students,
            data_from=body.data_from.isoformat() if body.data_from else None,
        )
        packed = None if state.faults.alters_pages(resource) else data.packed(resource, school)
        if packed is not None:
            positions = packed.select(students=body.students, since=updated_since, data_from=body.data_from)
            listed = packed.json_list(positions[offset : offset + limit])
            total = str(len(positions)).encode()
            return Response(
                b'{"records":' + listed + b',"total":' + total + b"}", media_type="application/json"
            )
        records = data.query(
            resource, school, students=body.students, since=updated_since, data_from=body.data_from
        )
        chosen = page(
            records, state=state, data=data, resource=resource, school=school, offset=offset, limit=limit
        )
        return json_response({"records": chosen, "total": len(records)})

    return app


def _filter_since(expression: str | None) -> datetime | None:
    if not expression:
        return None
    match = FILTER.match(expression)
    if match is None:
        raise HTTPException(400, "only dateLastModified>'…' is supported")
    try:
        return datetime.fromisoformat(match.group(1))
    except ValueError as exc:
        raise HTTPException(400, "dateLastModified is not ISO 8601") from exc
