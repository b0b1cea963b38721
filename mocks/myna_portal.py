"""Stand-in for Myna Portal「わたしの情報」(the self-information API, 自己情報取得API).

Assumed interface (the real specification is given only to registered services; this follows
the published flow, not the exact fields):
- `GET /oauth/authorize` (authorization code + PKCE S256, `scope` = the categories asked for):
  the card sign-in stand-in. The citizen picks a test card and the categories they agree to
  share, and `POST /oauth/authorize` sends them back to `redirect_uri` with a code.
- `POST /oauth/token`: `authorization_code` (with `code_verifier`) or `refresh_token`. The token
  carries only the categories the citizen agreed to. Client ids look like `SP12345678_AB1234`.
- `POST /request` `{"categories": [...], "mode": "latest"}` → `{"process_id": …}`; a category
  outside the token's is refused (403 `category_not_authorized`).
- `POST /result` `{"process_id": …}` → 202 `{"status": "not_ready"}` for the first polls, then
  `{"status": "done", "records": [...]}`, one record per category.
- `/_control/…`: the fault knobs (mocks/faults.py).
Categories: household (世帯情報), child_allowance (児童手当), single_parent (ひとり親家庭・児童扶養手当),
school_aid (教育・就学支援・就学援助), public_assistance (生活保護), tax (税・所得・住民税非課税).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Header, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mocks.faults import StandInState, add_fault_middleware, control_router, drifted, json_response

CATEGORIES = {
    "household": "世帯情報",
    "child_allowance": "子ども・子育て（児童手当）",
    "single_parent": "ひとり親家庭（児童扶養手当）",
    "school_aid": "教育・就学支援（就学援助）",
    "public_assistance": "福祉・介護（生活保護）",
    "tax": "税・所得（住民税非課税）",
}
DEMO_CLIENT_ID = "SP12345678_AB1234"


@dataclass
class Resident:
    """A card holder (a guardian) and what the portal holds about them."""

    ref: str
    name: str
    records: dict[str, dict[str, Any]]  # category → record


@dataclass
class MynaRecords:
    residents: dict[str, Resident] = field(default_factory=dict)

    def add(self, resident: Resident) -> None:
        self.residents[resident.ref] = resident


@dataclass
class _Grant:
    resident: str
    categories: frozenset[str]
    expires: float


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def create_app(
    data: MynaRecords | None = None, *, client_id: str = DEMO_CLIENT_ID, not_ready_polls: int = 1
) -> FastAPI:
    if data is None:
        from mocks.world_data import demo_myna_residents

        data = demo_myna_residents()
    state = StandInState()
    app = FastAPI(title="マイナポータル「わたしの情報」 stand-in (Myna Portal)")
    app.state.data = data
    app.state.stand_in = state
    app.include_router(control_router(state))
    add_fault_middleware(app, state, data_prefixes=("/request", "/result"))
    codes: dict[str, tuple[_Grant, str, str]] = {}  # code → grant, redirect uri, challenge
    tokens: dict[str, _Grant] = {}
    refresh: dict[str, _Grant] = {}
    processes: dict[str, tuple[_Grant, list[str], int]] = {}

    def issue(grant: _Grant) -> dict[str, Any]:
        access, renewal = state.issue_token(), secrets.token_urlsafe(24)
        tokens[access] = grant
        refresh[renewal] = grant
        return {
            "access_token": access,
            "refresh_token": renewal,
            "token_type": "Bearer",
            "expires_in": int(state.token_ttl),
            "scope": " ".join(sorted(grant.categories)),
        }

    @app.get("/oauth/authorize", response_class=HTMLResponse)
    def authorize_page(
        client_id_: Annotated[str, Query(alias="client_id")],
        redirect_uri: str,
        scope: str,
        state_: Annotated[str, Query(alias="state")],
        code_challenge: str,
        code_challenge_method: str = "S256",
        response_type: str = "code",
    ) -> HTMLResponse:
        if client_id_ != client_id or response_type != "code" or code_challenge_method != "S256":
            return HTMLResponse("<p>不正な要求です / invalid request</p>", status_code=400)
        asked = [c for c in scope.split() if c in CATEGORIES]
        hidden = {
            "client_id": client_id_,
            "redirect_uri": redirect_uri,
            "state": state_,
            "code_challenge": code_challenge,
        }
        fields = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in hidden.items()
        )
        cards = "".join(
            f'<option value="{html.escape(r.ref)}">{html.escape(r.name)}</option>'
            for r in data.residents.values()
        )
        boxes = "".join(
            f'<label><input type="checkbox" name="categories" value="{c}" checked> {label}</label><br>'
            for c, label in ((c, CATEGORIES[c]) for c in asked)
        )
        return HTMLResponse(
            f"""<!doctype html><html lang="ja"><meta charset="utf-8"><title>マイナポータル（模擬）</title>
<h1>マイナンバーカードでログイン（模擬）</h1><form method="post">{fields}
<p><label>カード <select name="resident">{cards}</select></label></p>
<p>次の情報を提供することに同意します:</p>{boxes}
<button name="decision" value="allow">同意する</button>
<button name="decision" value="deny">同意しない</button>
</form></html>"""
        )

    @app.post("/oauth/authorize")
    def authorize(
        client_id_: Annotated[str, Form(alias="client_id")],
        redirect_uri: Annotated[str, Form()],
        state_: Annotated[str, Form(alias="state")],
        code_challenge: Annotated[str, Form()],
        resident: Annotated[str, Form()],
        decision: Annotated[str, Form()],
        categories: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        if client_id_ != client_id or resident not in data.residents:
            return HTMLResponse("<p>不正な要求です / invalid request</p>", status_code=400)
        if decision != "allow":
            return RedirectResponse(
                f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state_})}", 303
            )
        chosen = frozenset(c for c in categories or [] if c in CATEGORIES)
        code = secrets.token_urlsafe(24)
        codes[code] = (_Grant(resident, chosen, 0.0), redirect_uri, code_challenge)
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state_})}", 303)

    @app.post("/oauth/token")
    def token(
        grant_type: Annotated[str, Form()],
        client_id_: Annotated[str, Form(alias="client_id")] = "",
        code: Annotated[str, Form()] = "",
        redirect_uri: Annotated[str, Form()] = "",
        code_verifier: Annotated[str, Form()] = "",
        refresh_token: Annotated[str, Form()] = "",
    ) -> Response:
        if client_id_ != client_id:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if grant_type == "authorization_code":
            found = codes.pop(code, None)
            if found is None or found[1] != redirect_uri:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            grant, _, challenge = found
            if not secrets.compare_digest(_s256(code_verifier), challenge):
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            return JSONResponse(issue(grant))
        if grant_type == "refresh_token" and refresh_token in refresh:
            return JSONResponse(issue(refresh.pop(refresh_token)))
        return JSONResponse({"error": "invalid_grant"}, status_code=400)

    def grant_of(authorization: str) -> _Grant | None:
        token_value = authorization.removeprefix("Bearer ")
        return tokens.get(token_value) if state.token_valid(token_value) else None

    @app.post("/request")
    def request(body: dict[str, Any], authorization: Annotated[str, Header()] = "") -> Response:
        grant = grant_of(authorization)
        if grant is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        asked = body.get("categories")
        if not isinstance(asked, list) or not asked or not all(isinstance(c, str) for c in asked):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        refused = sorted(set(asked) - grant.categories)
        if refused:
            return JSONResponse(
                {"error": "category_not_authorized", "error_description": ", ".join(refused)}, status_code=403
            )
        state.record(path="/request", resource="request", students=sorted(asked))
        process_id = secrets.token_hex(8)
        processes[process_id] = (grant, list(asked), 0)
        return json_response({"process_id": process_id, "accepted_at": datetime.now(UTC)})

    @app.post("/result")
    def result(body: dict[str, Any], authorization: Annotated[str, Header()] = "") -> Response:
        grant = grant_of(authorization)
        process = processes.get(str(body.get("process_id")))
        if grant is None or process is None or process[0].resident != grant.resident:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        owner, asked, polls = process
        if polls < not_ready_polls:
            processes[str(body["process_id"])] = (owner, asked, polls + 1)
            return JSONResponse({"status": "not_ready"}, status_code=202)
        resident = data.residents[owner.resident]
        records = [
            drifted(
                {"category": c, **resident.records[c]}, i, state.faults, required="asOf", coded="category"
            )
            for i, c in enumerate(asked)
            if c in resident.records
        ]
        return json_response({"status": "done", "records": records})

    return app
