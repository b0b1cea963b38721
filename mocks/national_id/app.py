"""The national-ID sign-in stand-in: an OpenID Connect provider imitating the デジタル認証アプリ
(My Number card login), built on Authlib's generic authorization server.

As published: authorization code only (no implicit, no password grant), `state` required,
scopes `openid` plus the basic four attributes `name address birthdate gender`. Assumed where
the real provider publishes nothing: PKCE (S256 or plain) required, client_secret_basic at
the token endpoint, ES256 ID tokens, a /userinfo endpoint, endpoint paths below.

Instead of a card reader, the login page lists card holders; picking one signs in as them.
By default they are the guardians of the demo world that `tsunagu run` seeds (the same
deterministic world the school stand-ins serve, made from TSUNAGU_DEMO_STUDENTS and
TSUNAGU_DEMO_SEED, never read from tsunagu's database), with the subject the seed gave them,
so signing in as one finds them in tsunagu. Tests pass their own `people`. Everything lives in
memory.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request, grants
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.grants import OpenIDCode
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from joserfc.jwk import ECKey

SCOPES = ["openid", "name", "address", "birthdate", "gender"]
CODE_TTL_SECONDS = 60
TOKEN_TTL_SECONDS = 600
DEFAULT_SECRET = "change-me-demo-only"  # noqa: S105 - the stand-in's known demo secret

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class Person:
    sub: str
    name: str
    address: str
    birthdate: str
    gender: str
    kana: str = ""
    children: tuple[str, ...] = ()  # shown on the login page only, to help pick someone

    def matches(self, words: str) -> bool:
        haystack = " ".join([self.name, self.kana, *self.children]).replace(" ", "")
        return all(word in haystack for word in words.split())


PAGE_SIZE = 20


def demo_people() -> list[Person]:
    from mocks.world_data import demo_national_id_people

    return demo_national_id_people()


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    sub: str
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["hwk"]  # proof of possession of a hardware key: the card


class RegisteredClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, client_id: str, secret: str, redirect_uris: Sequence[str]) -> None:
        self.client_id, self.secret, self.redirect_uris = client_id, secret, list(redirect_uris)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in scope_to_list(scope) or [] if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: Request, form: Sequence[tuple[str, str]]) -> None:
        super().__init__(method=request.method, uri=str(request.url), headers=request.headers)
        query = list(request.query_params.multi_items())
        self.payload = _Payload([*query, *form])
        self._args, self._form = dict(query), dict(form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class Answer:
    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]


class Provider(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, *, client: RegisteredClient, people: Callable[[], Sequence[Person]]) -> None:
        super().__init__(scopes_supported=SCOPES)
        self.client = client
        self._people = people
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, tuple[str, str, float]] = {}
        self.key = ECKey.generate_key("P-256", parameters={"kid": "nid-1", "use": "sig", "alg": "ES256"})
        self.issuer = ""
        provider = self

        class Issuer(IssuerParameter):  # type: ignore[misc]
            def get_issuer(self) -> str:
                return provider.issuer

        class IdToken(OpenIDCode):  # type: ignore[misc]
            def resolve_client_private_key(self, client: RegisteredClient) -> ECKey:
                return provider.key

            def get_client_algorithm(self, client: RegisteredClient) -> str:
                return "ES256"

            def get_client_claims(self, client: RegisteredClient) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.client_id], "exp": int(time.time()) + 600}

            def get_encode_header(self, client: RegisteredClient) -> dict[str, str]:
                return {"alg": "ES256", "kid": "nid-1"}

            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return any(code.nonce == nonce for code in provider.codes.values())

            def generate_user_info(self, user: Person, scope: str) -> dict[str, str]:
                return provider.claims_of(user, scope)

        class Code_(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                provider.codes[code] = Code(
                    client_id=request.client.client_id,
                    redirect_uri=data["redirect_uri"],
                    scope=request.scope,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    sub=request.user.sub,
                    auth_time=int(time.time()),
                    expires_at=time.monotonic() + CODE_TTL_SECONDS,
                )

            def query_authorization_code(self, code: str, client: RegisteredClient) -> Code | None:
                found = provider.codes.get(code)
                if found and found.client_id == client.client_id and found.expires_at > time.monotonic():
                    return found
                return None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                for key, value in list(provider.codes.items()):
                    if value is authorization_code:
                        del provider.codes[key]

            def authenticate_user(self, authorization_code: Code) -> Person | None:
                return provider.people.get(authorization_code.sub)

        self.register_grant(Code_, [CodeChallenge(required=True), IdToken(require_nonce=True)])
        self.register_extension(Issuer())
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                expires_generator=lambda *_: TOKEN_TTL_SECONDS,
            ),
        )

    @cached_property
    def people(self) -> dict[str, Person]:
        # Made on the first sign-in, not at start-up: a large demo world takes a while.
        return {p.sub: p for p in self._people()}

    def claims_of(self, person: Person, scope: str) -> dict[str, str]:
        granted = set(scope_to_list(scope) or [])
        claims = {"sub": person.sub}
        for attribute in ("name", "address", "birthdate", "gender"):
            if attribute in granted and getattr(person, attribute):
                claims[attribute] = getattr(person, attribute)
        return claims

    def query_client(self, client_id: str) -> RegisteredClient | None:
        return self.client if client_id == self.client.client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.tokens[token["access_token"]] = (
            request.user.sub,
            token["scope"],
            time.time() + TOKEN_TTL_SECONDS,
        )

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Answer:
        return Answer(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def _respond(answer: Answer) -> Response:
    if answer.location:
        return RedirectResponse(answer.location, status_code=302)
    headers = {k: v for k, v in answer.headers if k.lower() != "content-type"}
    body = answer.body if isinstance(answer.body, dict) else {"detail": answer.body}
    return JSONResponse(body, status_code=answer.status, headers=headers)


def create_app(
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] | None = None,
    people: Sequence[Person] | None = None,
) -> FastAPI:
    """The stand-in; by default it knows tsunagu's demo client, its demo callback URLs and the
    demo world's guardians."""
    client = RegisteredClient(
        client_id or os.environ.get("MOCK_NATIONAL_ID_CLIENT_ID", "tsunagu"),
        client_secret or os.environ.get("MOCK_NATIONAL_ID_CLIENT_SECRET", DEFAULT_SECRET),
        redirect_uris
        or os.environ.get(
            "MOCK_NATIONAL_ID_REDIRECT_URIS",
            "http://127.0.0.1:8000/guardian/sign-in/callback,http://localhost:8000/guardian/sign-in/callback",
        ).split(","),
    )
    provider = Provider(client=client, people=demo_people if people is None else lambda: people)
    app = FastAPI(title="national-ID sign-in stand-in", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def issuer_from_url(request: Request, call_next: Any) -> Response:
        # The issuer is wherever the stand-in was started (an ephemeral port in tests).
        provider.issuer = str(request.base_url).rstrip("/")
        response: Response = await call_next(request)
        return response

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        base = provider.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "authorization_response_iss_parameter_supported": True,
        }

    @app.get("/jwks")
    def jwks() -> dict[str, list[dict[str, Any]]]:
        return {"keys": [provider.key.as_dict(private=False)]}

    def _validate(request: Request, form: Sequence[tuple[str, str]]) -> tuple[_Request, Any] | Response:
        oauth_request = _Request(request, form)
        if not oauth_request.payload.data.get("state"):
            return HTMLResponse("state is required", status_code=400)
        try:
            grant = provider.get_consent_grant(request=oauth_request, end_user=None)
        except OAuth2Error as error:
            status, body, headers = error(None)
            answer = Answer(status, body, list(headers))
            if answer.location:
                return RedirectResponse(f"{answer.location}&iss={provider.issuer}", status_code=302)
            return HTMLResponse(f"{error.error}: {error.description}", status_code=400)
        return oauth_request, grant

    @app.get("/authorize", response_class=HTMLResponse)
    def login_page(request: Request, q: str = "") -> Response:
        checked = _validate(request, [])
        if isinstance(checked, Response):
            return checked
        everyone = list(provider.people.values())
        found = [p for p in everyone if p.matches(q)] if q.strip() else everyone
        params = {k: v for k, v in request.query_params.items() if k != "q"}
        return templates.TemplateResponse(
            request,
            "national_id/login.html",
            {"people": found[:PAGE_SIZE], "more": len(found) - PAGE_SIZE, "q": q, "params": params},
        )

    @app.post("/authorize")
    async def login(request: Request) -> Response:
        form = await request.form()
        sub = str(form.get("sub", ""))
        params = [(k, str(v)) for k, v in form.multi_items() if k not in ("sub", "q")]
        checked = _validate(request, params)
        if isinstance(checked, Response):
            return checked
        oauth_request, grant = checked
        person = provider.people.get(sub)
        answer = provider.create_authorization_response(request=oauth_request, grant_user=person, grant=grant)
        return _respond(answer)

    @app.post("/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        pairs = [(k, str(v)) for k, v in form.multi_items()]
        return _respond(provider.create_token_response(_Request(request, pairs)))

    @app.get("/userinfo")
    def userinfo(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = provider.tokens.get(token) if scheme.lower() == "bearer" else None
        if found is None or found[2] < time.time():
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        sub, scope, _expires = found
        return JSONResponse(provider.claims_of(provider.people[sub], scope))

    return app
