"""Invitation codes: how a school lets a guardian link to exactly one child.

A code is 16 symbols of Crockford's base32 (80 random bits), shown as XXXX-XXXX-XXXX-XXXX,
stored only as a SHA-256, single use, expiring; issuing a new one for a child voids the old.
Every attempt counts towards moving-window limits per guardian and per address.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from limits import RateLimitItemPerHour
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlmodel import Session, col, select, update

from app.audit import service as audit
from app.audit.models import Outcome
from app.core.config import get_settings
from app.core.errors import AppError, ConfigurationError, NotFound
from app.core.types import utcnow
from app.roster.models import GuardianLink, Homeroom, School, Student
from consent.authorize import guardian_actor
from consent.models import InvitationCode
from consent.oauth import aware, digest

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread
CODE_LENGTH = 16  # 16 × 5 bits = 80 bits
DEFAULT_VALID_DAYS = 30
ATTEMPTS_PER_GUARDIAN = RateLimitItemPerHour(10)
ATTEMPTS_PER_ADDRESS = RateLimitItemPerHour(30)


class InvitationRefused(AppError):
    status_code = 400
    code = "invitation_refused"


class TooManyAttempts(AppError):
    status_code = 429
    code = "too_many_attempts"


_REFUSED = (
    "この招待コードは使えません。入力の誤り、有効期限切れ、使用済み、または再発行により無効になった"
    "可能性があります。学校にお問い合わせください。 / This invitation code cannot be used: it may be"
    " mistyped, expired, already used or replaced. Please ask the school."
)


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise(typed: str) -> str:
    """What a person typed → the canonical code: case, dashes, spaces and look-alikes forgiven."""
    cleaned = typed.upper().replace("-", "").replace(" ", "").replace("　", "")
    return cleaned.translate(str.maketrans("OIL", "011"))


def display(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


class InvitationThrottle:
    """Attempts counted in a moving window (memory in the demo, Redis in production)."""

    def __init__(self, storage: Storage) -> None:
        self.limiter = MovingWindowRateLimiter(storage)

    def attempt(self, *, guardian_id: int, address: str) -> None:
        """Count this attempt; refuse it if either limit is already reached."""
        within = self.limiter.hit(ATTEMPTS_PER_GUARDIAN, "invitation-guardian", str(guardian_id))
        within = self.limiter.hit(ATTEMPTS_PER_ADDRESS, "invitation-address", address) and within
        if not within:
            raise TooManyAttempts(
                "招待コードの入力回数が上限に達しました。1時間ほど待ってからお試しください。"
                " / Too many attempts; please wait about an hour."
            )


@lru_cache
def invitation_throttle() -> InvitationThrottle:
    storage = storage_from_string(get_settings().rate_limit_storage_url)
    if not isinstance(storage, Storage):
        raise ConfigurationError("TSUNAGU_RATE_LIMIT_STORAGE_URL must name a synchronous limits storage")
    return InvitationThrottle(storage)


@dataclass(frozen=True)
class Letter:
    """What one printed letter says: the child, the code (shown once, here), its expiry."""

    student: Student
    school: School
    homeroom: Homeroom | None
    code: str
    expires_at: datetime


def issue(
    *, session: Session, student_id: int, valid_days: int = DEFAULT_VALID_DAYS, for_student: bool = False
) -> tuple[InvitationCode, str]:
    """A fresh code for the child (or, `for_student`, for the child's own page); any unused
    earlier code of the same kind stops working."""
    now = utcnow()
    session.exec(
        update(InvitationCode)
        .where(
            col(InvitationCode.student_id) == student_id,
            col(InvitationCode.for_student) == for_student,
            col(InvitationCode.used_at).is_(None),
            col(InvitationCode.voided_at).is_(None),
        )
        .values(voided_at=now)
    )
    code = new_code()
    invitation = InvitationCode(
        student_id=student_id,
        for_student=for_student,
        code_hash=digest(code),
        issued_at=now,
        expires_at=now + timedelta(days=valid_days),
    )
    session.add(invitation)
    session.flush()
    return invitation, code


def find_homeroom(*, session: Session, school_code: str, homeroom_name: str) -> tuple[School, Homeroom]:
    """A homeroom by its school's code and its name (the latest school year's)."""
    school = session.exec(select(School).where(School.code == school_code)).first()
    if school is None:
        raise NotFound(f"no school with code {school_code!r}")
    homeroom = session.exec(
        select(Homeroom)
        .where(Homeroom.school_id == school.id, Homeroom.name == homeroom_name)
        .order_by(col(Homeroom.school_year).desc())
    ).first()
    if homeroom is None:
        raise NotFound(f"no homeroom {homeroom_name!r} at {school.name}")
    return school, homeroom


def issue_for_homeroom(
    *, session: Session, school: School, homeroom: Homeroom, valid_days: int = DEFAULT_VALID_DAYS
) -> list[Letter]:
    """New codes for every enrolled child of a homeroom, in roll order (old codes stop working)."""
    students = session.exec(
        select(Student)
        .where(Student.homeroom_id == homeroom.id, col(Student.left_on).is_(None))
        .order_by(col(Student.family_name_kana), col(Student.given_name_kana), col(Student.id))
    ).all()
    letters = []
    for student in students:
        assert student.id is not None
        invitation, code = issue(session=session, student_id=student.id, valid_days=valid_days)
        letters.append(Letter(student, school, homeroom, code, invitation.expires_at))
    return letters


def _valid(session: Session, typed: str, *, for_student: bool = False) -> InvitationCode:
    invitation = session.exec(
        select(InvitationCode).where(InvitationCode.code_hash == digest(normalise(typed))).with_for_update()
    ).first()
    if (
        invitation is None
        or invitation.for_student is not for_student
        or invitation.used_at is not None
        or invitation.voided_at is not None
        or aware(invitation.expires_at) <= utcnow()
    ):
        raise InvitationRefused(_REFUSED)
    return invitation


def preview(
    *, session: Session, throttle: InvitationThrottle, guardian_id: int, address: str, typed: str
) -> Student:
    """The child a code is for, to show (name and birth date) before the guardian confirms."""
    throttle.attempt(guardian_id=guardian_id, address=address)
    student = session.get(Student, _valid(session, typed).student_id)
    if student is None:
        raise InvitationRefused(_REFUSED)
    return student


def redeem(
    *, session: Session, throttle: InvitationThrottle, guardian_id: int, address: str, typed: str
) -> Student:
    """Use the code up and link the guardian to the child (a verified GuardianLink)."""
    throttle.attempt(guardian_id=guardian_id, address=address)
    invitation = _valid(session, typed)
    now = utcnow()
    invitation.used_at = now
    invitation.used_by_guardian_id = guardian_id
    session.add(invitation)
    link = session.exec(
        select(GuardianLink).where(
            GuardianLink.guardian_id == guardian_id, GuardianLink.student_id == invitation.student_id
        )
    ).first()
    link = link or GuardianLink(guardian_id=guardian_id, student_id=invitation.student_id)
    link.verified_at = now
    session.add(link)
    session.flush()
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=guardian_actor(guardian_id),
            action="guardian.linked",
            outcome=Outcome.done,
            student_id=invitation.student_id,
            at=now,
        ),
    )
    student = session.get(Student, invitation.student_id)
    assert student is not None
    return student


def sign_in_student(*, session: Session, throttle: InvitationThrottle, address: str, typed: str) -> Student:
    """A student's one-time code → the student, whose own page it opens (the code is used up)."""
    throttle.attempt(guardian_id=0, address=address)
    invitation = _valid(session, typed, for_student=True)
    invitation.used_at = utcnow()
    session.add(invitation)
    session.flush()
    student = session.get(Student, invitation.student_id)
    if student is None:
        raise InvitationRefused(_REFUSED)
    return student
