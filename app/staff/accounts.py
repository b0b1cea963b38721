"""Staff accounts: create, disable, list, and the password check behind sign-in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from limits import RateLimitItemPerMinute, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from pwdlib import PasswordHash
from sqlmodel import Session, col, select

from app.core.config import Mode, get_settings
from app.core.errors import AppError, BadRequest, ConfigurationError, Conflict, Forbidden, NotFound
from app.roster.models import Homeroom, School, StaffRole, StaffUser
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.staff.access import MATRIX, Reach
from app.staff.models import SignInEventKind, StaffSignInEvent

MIN_PASSWORD_LENGTH = 12
# Five wrong passwords within 15 minutes lock the account for the rest of that window; an
# address that fails 30 times in 5 minutes (password spraying across accounts) is slowed too.
LOGIN_FAILURES = parse("5 per 15 minutes")
ADDRESS_FAILURES = RateLimitItemPerMinute(30, 5)


class TooManyAttempts(AppError):
    status_code = 429
    code = "too_many_requests"


class WrongCredentials(AppError):
    status_code = 401
    code = "unauthorized"


@lru_cache
def password_hasher() -> PasswordHash:
    return PasswordHash.recommended()


@lru_cache
def _dummy_hash() -> str:
    # Verified against when the login is unknown, so both answers take the same time.
    return password_hasher().hash("tsunagu-no-such-account")


class SignInThrottle:
    """Failed sign-ins counted in a moving window (memory in the demo, Redis in production)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    def locked(self, *, login: str, address: str) -> bool:
        return not (
            self.limiter.test(LOGIN_FAILURES, "staff-login", login)
            and self.limiter.test(ADDRESS_FAILURES, "staff-address", address)
        )

    def failed(self, *, login: str, address: str) -> None:
        self.limiter.hit(LOGIN_FAILURES, "staff-login", login)
        self.limiter.hit(ADDRESS_FAILURES, "staff-address", address)

    def succeeded(self, *, login: str) -> None:
        self.limiter.clear(LOGIN_FAILURES, "staff-login", login)


@lru_cache
def sign_in_throttle() -> SignInThrottle:
    storage = storage_from_string(get_settings().rate_limit_storage_url)
    if not isinstance(storage, Storage):
        raise ConfigurationError("TSUNAGU_RATE_LIMIT_STORAGE_URL must name a synchronous limits storage")
    return SignInThrottle(storage)


_LOCKED = (
    "サインインの失敗が続いたため、しばらくサインインできません。15分ほど待ってからお試しください。"
    " / Too many failed sign-ins; please wait about 15 minutes."
)
_WRONG = "ログインIDまたはパスワードが違います。 / Wrong login or password."


def record_event(
    *,
    session: Session,
    kind: SignInEventKind,
    staff: StaffUser | None,
    address: str | None = None,
    detail: str | None = None,
) -> None:
    """Note a sign-in event for administrators (in the caller's transaction). Never a password;
    the login only of an existing account."""
    session.add(
        StaffSignInEvent(
            kind=kind,
            staff_user_id=staff.id if staff else None,
            login=staff.login if staff else None,
            address=address[:64] if address else None,
            detail=detail,
        )
    )


def by_login(*, session: Session, login: str) -> StaffUser | None:
    """The account with this login (logins are unique), active or not."""
    return session.exec(select(StaffUser).where(StaffUser.login == login)).one_or_none()


def authenticate(
    *, session: Session, login: str, password: str, address: str, throttle: SignInThrottle
) -> StaffUser:
    """The active staff member with this login and password, or a refusal that names no reason
    an attacker could use (unknown login and wrong password read the same). Every outcome is
    recorded as a sign-in event."""
    login = login.strip()
    staff = by_login(session=session, login=login)
    if throttle.locked(login=login, address=address):
        record_event(session=session, kind=SignInEventKind.locked_out, staff=staff, address=address)
        raise TooManyAttempts(_LOCKED)
    hasher = password_hasher()
    if staff is None or staff.password_hash is None or not staff.is_active:
        hasher.verify(password, _dummy_hash())
        throttle.failed(login=login, address=address)
        reason = "unknown login" if staff is None else "account disabled or without password"
        record_event(
            session=session, kind=SignInEventKind.failed, staff=staff, address=address, detail=reason
        )
        raise WrongCredentials(_WRONG)
    valid, updated_hash = hasher.verify_and_update(password, staff.password_hash)
    if not valid:
        throttle.failed(login=login, address=address)
        record_event(
            session=session,
            kind=SignInEventKind.failed,
            staff=staff,
            address=address,
            detail="wrong password",
        )
        raise WrongCredentials(_WRONG)
    throttle.succeeded(login=login)
    record_event(session=session, kind=SignInEventKind.signed_in, staff=staff, address=address)
    if updated_hash is not None:  # the recommended parameters moved on since this hash was made
        staff.password_hash = updated_hash
        session.add(staff)
        session.flush()
    return staff


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。 / Too short.")


def add(
    *,
    session: Session,
    login: str,
    display_name: str,
    role: StaffRole,
    password: str,
    municipality_id: int | None = None,
    school_id: int | None = None,
    homeroom_id: int | None = None,
) -> StaffUser:
    """Create an account whose place (homeroom, school, municipality) fits its role's reach."""
    _check_password(password)
    if by_login(session=session, login=login) is not None:
        raise Conflict(f"login {login!r} is taken")
    reach = MATRIX[role].reach
    homeroom = session.get(Homeroom, homeroom_id) if homeroom_id is not None else None
    if reach is Reach.homeroom:
        if homeroom is None:
            raise BadRequest("a homeroom teacher needs an existing --homeroom")
        school_id = homeroom.school_id
    elif homeroom_id is not None:
        raise BadRequest(f"a {role.value} is not bound to a homeroom")
    school = session.get(School, school_id) if school_id is not None else None
    if reach in (Reach.homeroom, Reach.school) and school is None:
        raise BadRequest(f"a {role.value} needs an existing --school")
    if reach in (Reach.municipality, Reach.nobody) and school_id is not None:
        raise BadRequest(f"a {role.value} is not bound to a school")
    if school is not None:
        municipality_id = school.municipality_id
    if municipality_id is None:
        raise BadRequest("--municipality is required")
    staff = StaffUser(
        login=login,
        display_name=display_name,
        role=role,
        municipality_id=municipality_id,
        school_id=school_id,
        homeroom_id=homeroom_id,
        password_hash=password_hasher().hash(password),
    )
    session.add(staff)
    session.flush()
    return staff


def disable(*, session: Session, login: str) -> int:
    """Disable an account and sign it out of every browser at once; returns the sessions ended."""
    staff = by_login(session=session, login=login)
    if staff is None or staff.id is None:
        raise NotFound(f"no staff account {login!r}")
    staff.is_active = False
    session.add(staff)
    session.flush()
    ended = web_sessions.end_all(session=session, principal_kind=PrincipalKind.staff, principal_id=staff.id)
    record_event(
        session=session, kind=SignInEventKind.disabled, staff=staff, detail=f"{ended} session(s) ended"
    )
    return ended


def sign_in_events(
    *, session: Session, staff: StaffUser, limit: int = 200
) -> list[tuple[StaffSignInEvent, str]]:
    """The newest sign-in events, each with the account's display name: administrators only.
    Attempts on unknown logins belong to no municipality and are shown to every administrator."""
    if staff.role is not StaffRole.administrator:
        raise Forbidden("サインインの記録は管理者が確認します。 / Administrators only.")
    rows = session.exec(
        select(StaffSignInEvent, StaffUser.display_name)
        .join(StaffUser, col(StaffUser.id) == StaffSignInEvent.staff_user_id, isouter=True)
        .where(sa.or_(col(StaffUser.municipality_id) == staff.municipality_id, col(StaffUser.id).is_(None)))
        .order_by(col(StaffSignInEvent.at).desc(), col(StaffSignInEvent.id).desc())
        .limit(limit)
    ).all()
    return [(event, name or "") for event, name in rows]


def listing(*, session: Session) -> list[StaffUser]:
    return list(session.exec(select(StaffUser).order_by(col(StaffUser.login))))


@dataclass(frozen=True)
class DemoAccount:
    login: str
    password: str
    role: StaffRole


def demo_accounts() -> list[DemoAccount]:
    """The demo's logins and passwords, known to everyone who reads the README: demo mode only."""
    if get_settings().mode is not Mode.demo:
        return []
    names = {role: f"demo-{role.value.replace('_', '-')}" for role in MATRIX}
    return [DemoAccount(login=name, password=name, role=role) for role, name in names.items()]


def seed_demo_accounts(*, session: Session) -> list[DemoAccount]:
    """One account per role on the first school and homeroom; refused outside demo mode."""
    if get_settings().mode is not Mode.demo:
        raise AppError("demo accounts exist only in demo mode (TSUNAGU_MODE=demo)")
    school = session.exec(select(School).order_by(col(School.id))).first()
    if school is None:
        raise AppError("no school yet: seed the demo world first")
    homeroom = session.exec(
        select(Homeroom).where(Homeroom.school_id == school.id).order_by(col(Homeroom.id))
    ).first()
    accounts = demo_accounts()
    for account in accounts:
        rule = MATRIX[account.role]
        if by_login(session=session, login=account.login) is None:
            add(
                session=session,
                login=account.login,
                display_name=f"デモ {rule.wording.ja}",
                role=account.role,
                password=account.password,
                municipality_id=school.municipality_id,
                school_id=school.id if rule.reach is Reach.school else None,
                homeroom_id=homeroom.id if homeroom is not None and rule.reach is Reach.homeroom else None,
            )
    return accounts
