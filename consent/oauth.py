"""The OAuth 2.0 authorization server on Authlib: code grant with PKCE (S256 only), rotating
refresh tokens, RFC 9068 JWT access tokens, revocation, introspection, PAR and RFC 9207 `iss`.

Authlib has no FastAPI integration: `AuthorizationServer` below is the framework glue
(requests in, `OAuthResponse` out) and every storage method Authlib asks for, bound to one
database session per request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import urlencode

import sqlalchemy as sa
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer as AuthlibAuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from joserfc import jwt as joserfc_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select, update

from app.core.config import get_settings
from app.core.types import utcnow
from consent import keys
from consent.models import (
    AuthorizationCode,
    AuthorizationRequest,
    Client,
    ClientAssertion,
    ConsentGrant,
    GrantStatus,
    OAuthToken,
)
from consent.scopes import Purpose, Scope

_clients: sa.Table = Client.__table__  # type: ignore[attr-defined]
_codes: sa.Table = AuthorizationCode.__table__  # type: ignore[attr-defined]
_tokens: sa.Table = OAuthToken.__table__  # type: ignore[attr-defined]
_grants: sa.Table = ConsentGrant.__table__  # type: ignore[attr-defined]

# The code exchange's statements, built once: composing a statement (coercing each clause,
# then computing its cache key) took more CPU than SQLite took to run it, and a statement
# object that is reused keeps its cache key.
_ACTIVE_CLIENT = sa.select(_clients).where(
    _clients.c.client_id == sa.bindparam("client_id"), _clients.c.is_active
)
_CODE_FOR_EXCHANGE = (
    sa.select(_codes).where(_codes.c.code_hash == sa.bindparam("code_hash")).with_for_update()
)
# A code exchange reads the code (locked, so two concurrent exchanges of one code cannot both
# succeed), its client and its grant's state in one statement instead of three: on PostgreSQL
# each was a round trip. Only the columns the exchange uses: psycopg describes every column of
# every result afresh. The client's keep their names, as in _ACTIVE_CLIENT; the code's and the
# grant's are labelled.
_EXCHANGE_CODE_COLUMNS = [
    _codes.c[name]
    for name in (
        "id",
        "client_id",
        "guardian_id",
        "grant_id",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "used_at",
        "expires_at",
    )
]
_EXCHANGE: sa.Select[Any] = (
    sa.select(
        *[
            _clients.c[name]
            for name in (
                "id",
                "client_id",
                "secret_hash",
                "jwks",
                "redirect_uris",
                "scopes",
                "purposes",
                "require_par",
                "is_active",
            )
        ],
        *[c.label(f"code_{c.name}") for c in _EXCHANGE_CODE_COLUMNS],
        _grants.c.status.label("grant_status"),
        _grants.c.student_id.label("grant_student_id"),
    )
    .select_from(_codes.join(_clients, _codes.c.client_id == _clients.c.id))
    .join(_grants, _codes.c.grant_id == _grants.c.id)
    .where(_codes.c.code_hash == sa.bindparam("code_hash"))
    .with_for_update(of=_codes)
)
_CODE_COLUMNS = [(c.name, f"code_{c.name}") for c in _EXCHANGE_CODE_COLUMNS]
# Marks a code used only if nothing did before: of two exchanges of one code racing, one
# marks it and the other finds it used (on SQLite the reads before it take no lock).
_CODE_USED = (
    sa.update(_codes)
    .where(_codes.c.id == sa.bindparam("code_id"), _codes.c.used_at.is_(None))
    .values(used_at=sa.bindparam("now"))
)
# The same for a refresh token: of two refreshes with one token, one wins and the other is a replay.
_REFRESH_USED = (
    sa.update(_tokens)
    .where(_tokens.c.id == sa.bindparam("token_id"), _tokens.c.refresh_used_at.is_(None))
    .values(refresh_used_at=sa.bindparam("now"))
)
_GRANT_STATE = sa.select(_grants.c.status, _grants.c.student_id).where(
    _grants.c.id == sa.bindparam("grant_id")
)
_NEW_TOKEN = sa.insert(_tokens)
_NEW_TOKEN_COLUMNS = [
    "client_id",
    "guardian_id",
    "grant_id",
    "code_id",
    "family_id",
    "access_jti",
    "refresh_hash",
    "scope",
    "issued_at",
    "access_expires_at",
    "refresh_expires_at",
]
# On PostgreSQL the code is spent and its token stored by one statement (one round trip, not
# two): the token row is inserted only if the UPDATE marked the code, so an exchange that lost
# the race inserts nothing, as with the two statements SQLite runs. The token's values are
# bound as `new_<column>`: SQLAlchemy would take a parameter named like a column of the code
# as a value for the UPDATE to SET.
_SPENT_CODE = _CODE_USED.returning(_codes.c.id).cte("spent_code")
_SPEND_CODE_AND_ISSUE = (
    sa.insert(_tokens)
    .from_select(
        _NEW_TOKEN_COLUMNS,
        sa.select(
            *[
                _SPENT_CODE.c.id
                if name == "code_id"
                else sa.bindparam(f"new_{name}", type_=_tokens.c[name].type)
                for name in _NEW_TOKEN_COLUMNS
            ]
        ).select_from(_SPENT_CODE),
        include_defaults=False,  # every column that has a value is listed; the rest stay NULL
    )
    .returning(_tokens.c.id)
)  # psycopg reports no row count for it

PURPOSE_PREFIX = "purpose:"
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - RFC 9068 media type, not a secret
ACCESS_TOKEN_TTL = timedelta(minutes=5)
REFRESH_TOKEN_TTL = timedelta(days=30)
CODE_TTL = timedelta(seconds=60)
PUSHED_REQUEST_TTL = timedelta(seconds=90)  # RFC 9126: well under 600 s
CONSENT_REQUEST_TTL = timedelta(minutes=10)  # time the guardian has on the consent page
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
SECRET_AUTH = "client_secret_basic"  # noqa: S105 - a method name
KEY_AUTH = "private_key_jwt"
CLIENT_AUTH_METHODS = [SECRET_AUTH, KEY_AUTH]
ASSERTION_ALGORITHMS = ["ES256", "RS256"]  # what a client may sign its private_key_jwt with
ASSERTION_MAX_LIFETIME = timedelta(minutes=10)
GRANT_TYPES = ["authorization_code", "refresh_token"]


def issuer() -> str:
    return get_settings().public_base_url.rstrip("/")


def resource_audience() -> str:
    return f"{issuer()}/api/v1"


def scopes_supported() -> list[str]:
    return [s.value for s in Scope] + [f"{PURPOSE_PREFIX}{p.value}" for p in Purpose]


def split_scope(scope: str | None) -> tuple[list[Scope], list[Purpose]]:
    """An OAuth scope string → the data categories and the purposes it names."""
    data: list[Scope] = []
    purposes: list[Purpose] = []
    for token in scope_to_list(scope) or []:
        if token.startswith(PURPOSE_PREFIX):
            purposes.append(Purpose(token.removeprefix(PURPOSE_PREFIX)))
        else:
            data.append(Scope(token))
    return data, purposes


def join_scope(scopes: Sequence[Scope | str], purposes: Sequence[Purpose | str]) -> str:
    return " ".join(
        [Scope(s).value for s in scopes] + [f"{PURPOSE_PREFIX}{Purpose(p).value}" for p in purposes]
    )


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (codes, tokens, client secrets, handles).

    These are ≥ 256-bit random values, not passwords: a fast hash is safe, and it keeps token
    exchanges cheap (argon2 would cost ~50 ms per exchange for no gain).
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- Authlib adapters -------------------------------------------------------------------


class OAuthClient(ClientMixin):  # type: ignore[misc]
    # ROW is the client's row as read by Core (see StoredCode): every token request reads it.
    def __init__(self, row: Any) -> None:
        self.row = row
        self.client_id = row.client_id

    def get_client_id(self) -> str:
        return str(self.row.client_id)

    def get_default_redirect_uri(self) -> None:
        # The redirect URI is always required and compared exactly; nothing is assumed.
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = set(self.row.scopes) | {f"{PURPOSE_PREFIX}{p}" for p in self.row.purposes}
        granted = [t for t in scope_to_list(scope) or [] if t in allowed]
        return " ".join(granted) if granted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.row.secret_hash is None:
            return False
        return secrets.compare_digest(digest(client_secret), self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A client with registered keys authenticates with them; one without, with its secret.
        return method == (KEY_AUTH if self.row.jwks else SECRET_AUTH)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass(frozen=True)
class ConsentingGuardian:
    """The resource owner Authlib passes around: who approved, under which grant, what."""

    guardian_id: int
    grant_id: int
    student_id: int
    approved_scope: str


class StoredCode:
    # ROW is the code's row as read by Core (attribute access by column name): the token
    # endpoint is the busiest, and the ORM's identity map and flush cost it more than its SQL.
    def __init__(self, row: Any) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return str(self.row.redirect_uri)

    def get_scope(self) -> str:
        return str(self.row.scope)


class StoredToken:
    """An issued token for revocation, introspection and refresh, with its grant's status."""

    def __init__(self, row: OAuthToken, client: Client, grant: ConsentGrant, kind: str) -> None:
        self.row, self.client, self.grant, self.kind = row, client, grant, kind

    def check_client(self, client: OAuthClient) -> bool:
        return bool(client.row.id == self.row.client_id)

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_at(self) -> datetime:
        if self.kind == "refresh_token" and self.row.refresh_expires_at is not None:
            return aware(self.row.refresh_expires_at)
        return aware(self.row.access_expires_at)

    def is_expired(self) -> bool:
        return self.get_expires_at() <= utcnow()

    def is_revoked(self) -> bool:
        if self.row.revoked_at is not None or self.grant.status is not GrantStatus.active:
            return True
        return self.kind == "refresh_token" and self.row.refresh_used_at is not None


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        data: dict[str, str] = {}
        datalist: dict[str, list[str]] = {}
        for key, value in self._pairs:
            data.setdefault(key, value)
            datalist.setdefault(key, []).append(value)
        self._data, self._datalist = data, datalist

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class TsunaguRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth2Request made from what FastAPI received: method, URL, headers, query and form."""

    def __init__(
        self,
        *,
        method: str,
        uri: str,
        headers: Any,
        query: Sequence[tuple[str, str]],
        form: Sequence[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = _Payload([*query, *form])
        self._args = dict(query)
        self._form = dict(form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class OAuthResponse:
    """What Authlib answered: the router turns it into JSON, a redirect, or an error page."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"]
        self.headers.append(("Location", value))


class _Issuer(IssuerParameter):  # type: ignore[misc]
    def get_issuer(self) -> str:
        return issuer()


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only: no challenge, `plain`, or an absent method are refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        # Authlib lets a code without a challenge through when no verifier is sent; we issue
        # none without one, so such a code can only be forged or left over: refuse it.
        if not self.get_authorization_code_challenge(grant.request.authorization_code):
            raise InvalidGrantError("This code was issued without PKCE.")
        super().validate_code_verifier(grant, result)


# --- grants -----------------------------------------------------------------------------


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: AuthorizationServer

    def save_authorization_code(self, code: str, request: TsunaguRequest) -> None:
        user: ConsentingGuardian = request.user
        data = request.payload.data
        self.server.session.add(
            AuthorizationCode(
                code_hash=digest(code),
                client_id=request.client.row.id,
                guardian_id=user.guardian_id,
                grant_id=user.grant_id,
                redirect_uri=data["redirect_uri"],
                scope=user.approved_scope,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=utcnow() + CODE_TTL,
            )
        )
        self.server.session.flush()

    def query_authorization_code(self, code: str, client: OAuthClient) -> StoredCode | None:
        session = self.server.session
        row = self.server.exchange_code(code)
        if row is None:
            # Locked so two concurrent exchanges of one code cannot both succeed.
            row = self.server.connection.execute(_CODE_FOR_EXCHANGE, {"code_hash": digest(code)}).first()
        if row is None or row.client_id != client.row.id:
            return None
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a reused code is refused and what it issued is revoked.
            self.server.start_writing()
            revoke_issued_from_code(session=session, code_id=row.id)
            return None
        if aware(row.expires_at) <= utcnow():
            return None
        return StoredCode(row)

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        # Kept, not deleted: a second use must be recognised to revoke what the first issued.
        # save_token marked it used, before the token it issued was stored.
        return None

    def authenticate_user(self, authorization_code: StoredCode) -> ConsentingGuardian | None:
        row = authorization_code.row
        return self.server.consenting(row.guardian_id, row.grant_id, row.scope)


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: AuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> StoredToken | None:
        session = self.server.session
        row = session.exec(
            select(OAuthToken).where(OAuthToken.refresh_hash == digest(refresh_token)).with_for_update()
        ).first()
        if row is None or row.client_id != self.request.client.row.id:
            return None
        if row.refresh_used_at is not None:
            # A rotated refresh token came back: someone holds a copy. Revoke the whole family.
            self.server.start_writing()
            revoke_family(session=session, family_id=row.family_id)
            return None
        stored = self.server.stored_token(row, "refresh_token")
        if stored is None or stored.is_expired() or stored.is_revoked():
            return None
        return stored

    def authenticate_user(self, refresh_token: StoredToken) -> ConsentingGuardian | None:
        row = refresh_token.row
        return self.server.consenting(row.guardian_id, row.grant_id, row.scope)

    def revoke_old_credential(self, refresh_token: StoredToken) -> None:
        # save_token marked it used, before the token that replaces it was stored.
        return None


# --- client authentication with a signed assertion (RFC 7523 §2.2, private_key_jwt) ---


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """The client signs a short JWT with its own key; we check it against the keys registered
    for it, and accept each assertion once."""

    CLIENT_AUTH_METHOD = KEY_AUTH

    def __init__(self, server: AuthorizationServer) -> None:
        super().__init__()
        self.server = server

    def get_audiences(self) -> list[str]:
        base = issuer()
        return [
            base,
            f"{base}/oauth/token",
            f"{base}/oauth/par",
            f"{base}/oauth/revoke",
            f"{base}/oauth/introspect",
        ]

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        if not client.row.jwks:
            raise InvalidClientError(description="no keys are registered for this client")
        return KeySet.import_key_set(client.row.jwks)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = joserfc_jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description="the client assertion does not verify") from exc
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        if expires - utcnow() > ASSERTION_MAX_LIFETIME:
            return False  # a long-lived assertion would have to be remembered for as long
        client = self.server.query_client(str(claims["sub"]))
        if client is None or client.row.id is None:
            return False
        session = self.server.session
        try:
            with session.begin_nested():
                session.add(
                    ClientAssertion(client_id=client.row.id, jti_hash=digest(str(jti)), expires_at=expires)
                )
        except IntegrityError:
            return False  # seen before: a replay
        return True


# --- endpoints --------------------------------------------------------------------------


class _TokenLookup:
    server: AuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        return self.server.find_token(token_string, token_type_hint)


class Revocation(_TokenLookup, RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def revoke_token(self, token: StoredToken, request: TsunaguRequest) -> None:
        # RFC 7009 §2.1: revoking either token of a grant may revoke the others; we revoke the
        # whole family so no sibling stays usable.
        revoke_family(session=self.server.session, family_id=token.row.family_id)


class Introspection(_TokenLookup, IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def check_permission(self, token: StoredToken, client: OAuthClient, request: TsunaguRequest) -> bool:
        # A client may introspect only its own tokens.
        return token.check_client(client)

    def introspect_token(self, token: StoredToken) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client.client_id,
            "scope": token.row.scope,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "sub": f"guardian:{token.row.guardian_id}",
            "iss": issuer(),
            "aud": resource_audience(),
            "iat": int(aware(token.row.issued_at).timestamp()),
            "exp": int(token.get_expires_at().timestamp()),
            "grant_id": token.row.grant_id,
            "child_id": token.grant.student_id,
        }


# --- the server -------------------------------------------------------------------------


class AuthorizationServer(AuthlibAuthorizationServer):  # type: ignore[misc]
    """Authlib's generic server bound to one database session (one per HTTP request)."""

    def __init__(self, *, session: Session, before_writing: Callable[[], object] | None = None) -> None:
        super().__init__(scopes_supported=scopes_supported())
        self.session = session
        # Called once, before the request's first write (the router's writer turn on SQLite).
        self._before_writing = before_writing
        self._writing = False
        self.register_grant(CodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshGrant)
        self.register_client_auth_method(KEY_AUTH, PrivateKeyJWT(self))
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_extension(_Issuer())
        self.register_token_generator("default", self._generate_token)
        # Set by read_exchange: the presented code's row with its client and grant state.
        self._exchange: sa.Row[Any] | None = None
        self._exchange_hash: str | None = None
        # The claims of the access token just generated, for save_token to store.
        self._claims: dict[str, Any] = {}

    def start_writing(self) -> None:
        """Say that the writes begin: the reads and the work before them (client
        authentication, PKCE, signing) hold no lock, so exchanges overlap up to here."""
        if not self._writing:
            self._writing = True
            if self._before_writing is not None:
                self._before_writing()

    @cached_property
    def connection(self) -> sa.Connection:
        """The session's connection, for Core statements: Session.execute adds ORM work that
        statements returning plain rows don't need (a fifth of the token endpoint's CPU)."""
        return self.session.connection()

    def read_exchange(self, request: TsunaguRequest) -> None:
        """For a code exchange, read the code, its client and its grant in one statement."""
        data = request.payload.data
        code = data.get("code")
        if data.get("grant_type") != "authorization_code" or not code:
            return
        self._exchange_hash = digest(code)
        self._exchange = self.connection.execute(_EXCHANGE, {"code_hash": self._exchange_hash}).first()

    def exchange_code(self, code: str) -> Any:
        """The code's row as read by read_exchange (attributes named as its columns), or None."""
        row = self._exchange
        if row is None or self._exchange_hash != digest(code):
            return None
        mapping = row._mapping
        return SimpleNamespace(**{name: mapping[label] for name, label in _CODE_COLUMNS})

    # framework glue ------------------------------------------------------------------
    def create_oauth2_request(self, request: TsunaguRequest) -> TsunaguRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> OAuthResponse:
        return OAuthResponse(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        # Nothing listens to Authlib's signals; audit entries are written by our own code.
        return None

    def add_issuer(self, response: OAuthResponse) -> OAuthResponse:
        """RFC 9207 for redirects built outside create_authorization_response (early errors)."""
        if response.location and "iss=" not in response.location:
            response.location = add_params_to_uri(response.location, {"iss": issuer()})
        return response

    # storage ---------------------------------------------------------------------------
    def query_client(self, client_id: str) -> OAuthClient | None:
        row = self._exchange
        if row is None or row.client_id != client_id:
            row = self.connection.execute(_ACTIVE_CLIENT, {"client_id": client_id}).first()
        return OAuthClient(row) if row is not None and row.is_active else None

    def consenting(self, guardian_id: int, grant_id: int, scope: str) -> ConsentingGuardian | None:
        row = self._exchange
        if row is not None and row.code_grant_id == grant_id:
            status, student_id = row.grant_status, row.grant_student_id
        else:
            grant = self.connection.execute(_GRANT_STATE, {"grant_id": grant_id}).first()
            if grant is None:
                return None
            status, student_id = grant.status, grant.student_id
        if status is not GrantStatus.active:
            return None
        return ConsentingGuardian(guardian_id, grant_id, student_id, scope)

    def _generate_token(
        self,
        grant_type: str,
        client: OAuthClient,
        user: ConsentingGuardian | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        now = utcnow()
        claims = {
            "iss": issuer(),
            "aud": resource_audience(),
            "sub": f"guardian:{user.guardian_id}",
            "client_id": client.row.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + ACCESS_TOKEN_TTL).timestamp()),
            "jti": secrets.token_urlsafe(24),
            "scope": scope or user.approved_scope,
            "grant_id": user.grant_id,
            "child_id": user.student_id,
        }
        self._claims = claims
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": keys.sign_jwt(session=self.session, claims=claims, typ=ACCESS_TOKEN_TYP),
            "expires_in": int(ACCESS_TOKEN_TTL.total_seconds()),
            "scope": claims["scope"],
            "child_id": user.student_id,
        }
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict[str, Any], request: TsunaguRequest) -> None:
        user: ConsentingGuardian = request.user
        claims = self._claims
        code = request.authorization_code
        previous: StoredToken | None = request.refresh_token
        now = utcnow()
        self.start_writing()
        # The code or the refresh token is spent first, and only if no other request spent it
        # since it was read: then the token it pays for is stored.
        token_row = {
            "client_id": request.client.row.id,
            "guardian_id": user.guardian_id,
            "grant_id": user.grant_id,
            "code_id": code.row.id if code else (previous.row.code_id if previous else None),
            "family_id": previous.row.family_id if previous else secrets.token_hex(16),
            "access_jti": claims["jti"],
            "refresh_hash": digest(token["refresh_token"]) if "refresh_token" in token else None,
            "scope": claims["scope"],
            "issued_at": now,
            "access_expires_at": datetime.fromtimestamp(claims["exp"], UTC),
            "refresh_expires_at": now + REFRESH_TOKEN_TTL if "refresh_token" in token else None,
        }
        if code is not None:
            if not self._spend_code_and_issue(token_row, now):
                revoke_issued_from_code(session=self.session, code_id=code.row.id)
                raise InvalidGrantError("This code has already been used.")
            return
        if previous is not None and not self._spend(_REFRESH_USED, {"token_id": previous.row.id, "now": now}):
            revoke_family(session=self.session, family_id=previous.row.family_id)
            raise InvalidGrantError("This refresh token has already been used.")
        self.connection.execute(_NEW_TOKEN, token_row)

    def _spend_code_and_issue(self, token_row: dict[str, Any], now: datetime) -> bool:
        """Mark the code used and store its token; False (nothing stored) if another request
        had used the code."""
        spend = {"code_id": token_row["code_id"], "now": now}
        if self.connection.dialect.name == "postgresql":
            issue = spend | {f"new_{name}": value for name, value in token_row.items()}
            return self.connection.execute(_SPEND_CODE_AND_ISSUE, issue).first() is not None
        if not self._spend(_CODE_USED, spend):
            return False
        self.connection.execute(_NEW_TOKEN, token_row)
        return True

    def _spend(self, statement: sa.Update, parameters: dict[str, Any]) -> bool:
        """Run an UPDATE that marks a credential used; False if another request had used it."""
        return bool(self.connection.execute(statement, parameters).rowcount)

    def stored_token(self, row: OAuthToken, kind: str) -> StoredToken | None:
        client = self.session.get(Client, row.client_id)
        grant = self.session.get(ConsentGrant, row.grant_id)
        if client is None or grant is None:
            return None
        return StoredToken(row, client, grant, kind)

    def find_token(self, token_string: str, hint: str | None) -> StoredToken | None:
        if hint != "access_token":
            row = self.session.exec(
                select(OAuthToken).where(OAuthToken.refresh_hash == digest(token_string))
            ).first()
            if row is not None:
                return self.stored_token(row, "refresh_token")
        if hint != "refresh_token":
            try:
                claims = keys.verify_jwt(
                    token_string,
                    keys=keys.jwks(session=self.session),
                    typ=ACCESS_TOKEN_TYP,
                    issuer=issuer(),
                    audience=resource_audience(),
                )
            except keys.SignatureInvalid:
                return None
            row = self.session.exec(
                select(OAuthToken).where(OAuthToken.access_jti == claims.get("jti"))
            ).first()
            if row is not None:
                return self.stored_token(row, "access_token")
        return None


def token_response(
    *, session: Session, request: TsunaguRequest, before_writing: Callable[[], object] | None = None
) -> OAuthResponse:
    """The token endpoint's answer, in the request's transaction; BEFORE_WRITING is called once,
    before its first write."""
    server = AuthorizationServer(session=session, before_writing=before_writing)
    server.read_exchange(request)
    response: OAuthResponse = server.create_token_response(request)
    return response


# --- revocation of issued tokens --------------------------------------------------------


def revoke_family(*, session: Session, family_id: str) -> None:
    session.exec(
        update(OAuthToken)
        .where(col(OAuthToken.family_id) == family_id, col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_issued_from_code(*, session: Session, code_id: int) -> None:
    families = session.exec(select(OAuthToken.family_id).where(OAuthToken.code_id == code_id)).all()
    for family_id in set(families):
        revoke_family(session=session, family_id=family_id)


def revoke_for_grant(*, session: Session, grant_id: int) -> None:
    """Every token issued under a grant stops working at once (the grant was revoked)."""
    session.exec(
        update(OAuthToken)
        .where(col(OAuthToken.grant_id) == grant_id, col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


# --- pushed and pending authorization requests ------------------------------------------


def hold_request(*, session: Session, client: Client, params: dict[str, str], pushed: bool) -> str:
    """Keep an authorization request server-side; returns the one-time handle to it."""
    handle = secrets.token_urlsafe(32)
    assert client.id is not None
    session.add(
        AuthorizationRequest(
            handle_hash=digest(handle),
            client_id=client.id,
            params=params,
            pushed=pushed,
            expires_at=utcnow() + (PUSHED_REQUEST_TTL if pushed else CONSENT_REQUEST_TTL),
        )
    )
    session.flush()
    return handle


def take_request(
    *, session: Session, handle: str, pushed: bool, client_id: str | None = None
) -> AuthorizationRequest | None:
    """The held request for a handle, marked used; None if unknown, used, expired or not the
    caller's. A held request is good once."""
    row = session.exec(
        select(AuthorizationRequest)
        .where(AuthorizationRequest.handle_hash == digest(handle))
        .with_for_update()
    ).first()
    if row is None or row.pushed is not pushed or row.used_at is not None:
        return None
    if aware(row.expires_at) <= utcnow():
        return None
    if client_id is not None:
        client = session.get(Client, row.client_id)
        if client is None or client.client_id != client_id:
            return None
    row.used_at = utcnow()
    session.add(row)
    session.flush()
    return row


def error_redirect(error: OAuth2Error) -> str | None:
    """Where an authorization error may be sent: only to a redirect URI already validated
    for the client (RFC 6749 §4.1.2.1); None means show an error page instead."""
    if not error.redirect_uri:
        return None
    params = {"error": error.error}
    if error.description:
        params["error_description"] = error.description
    if error.state:
        params["state"] = error.state
    params["iss"] = issuer()
    separator = "&" if "?" in error.redirect_uri else "?"
    return f"{error.redirect_uri}{separator}{urlencode(params)}"


def metadata() -> dict[str, Any]:
    """RFC 8414 metadata: exactly what this server implements, nothing it does not."""
    base = issuer()
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "scopes_supported": scopes_supported(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "revocation_endpoint": f"{base}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": f"{base}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "pushed_authorization_request_endpoint": f"{base}/oauth/par",
        "require_pushed_authorization_requests": False,
        "ui_locales_supported": ["ja", "en"],
    }
