"""FastAPI dependencies of notify: who may keep the directory and send notices."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.core.errors import Forbidden
from app.roster.models import StaffRole
from app.staff.deps import CurrentStaff, SignedIn

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
