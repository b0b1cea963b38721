"""FastAPI dependencies of notify: units of work outside the request's own; who may keep notices."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from app.core.db import session_scope
from app.core.errors import Forbidden
from app.roster.models import StaffRole
from app.staff.deps import CurrentStaff, SignedIn

SessionFactory = Callable[[], AbstractContextManager[Session]]


def get_session_factory() -> SessionFactory:
    """Opens a unit of work (commit on success): the webhook commits its inbox rows before it
    answers LINE, and handles each event after the answer, each in a transaction of its own."""
    return session_scope


SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]


# Municipal staff who keep the directory and send notices; school roles and configuration-only
# administrators of other kinds do not. Notices carry no child data, so no reach applies.
NOTICE_ROLES = frozenset({StaffRole.case_worker, StaffRole.administrator})


def notice_staff(current: CurrentStaff) -> SignedIn:
    if current.staff.role not in NOTICE_ROLES:
        raise Forbidden(
            "この操作はこども家庭センターと管理者のみです。 / Municipal case workers and administrators only."
        )
    return current


NoticeStaff = Annotated[SignedIn, Depends(notice_staff)]
