"""Every table of the product, imported in one place so Alembic and the app see the same metadata."""

from app.audit.models import AuditChainHead, AuditEntry
from app.core import db as _db  # noqa: F401  (installs the naming convention first)
from app.roster.models import (
    Guardian,
    GuardianLink,
    Homeroom,
    Municipality,
    School,
    SchoolDay,
    StaffUser,
    Student,
)
from app.sessions.models import WebSession
from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    SchoolAidStatus,
)
from app.staff.models import CaseMeeting, CaseNote, StaffObservation, SupportAction
from connectors.models import IdentityReview, MynaLink, QuarantinedRecord, SyncCursor, SyncRun
from consent.models import (
    AuthorizationCode,
    AuthorizationRequest,
    Client,
    ConsentEvent,
    ConsentGrant,
    ConsentPermission,
    ConsentReceipt,
    InvitationCode,
    OAuthToken,
    Objection,
    SigningKey,
)
from notify import models as _notify_models  # noqa: F401  (notify's tables)
from rules.models import Alert, AlertEvent, ReviewCapacity, RulePromotion, ScreeningRun, Signal

__all__ = [
    "Alert",
    "AlertEvent",
    "AssignmentSubmission",
    "AttendanceDay",
    "AuditChainHead",
    "AuditEntry",
    "AuthorizationCode",
    "AuthorizationRequest",
    "BenefitStatus",
    "CaseMeeting",
    "CaseNote",
    "Client",
    "ConsentEvent",
    "ConsentGrant",
    "ConsentPermission",
    "ConsentReceipt",
    "FeeStatus",
    "GradeRecord",
    "Guardian",
    "GuardianLink",
    "Homeroom",
    "HouseholdInfo",
    "IdentityReview",
    "InvitationCode",
    "LearningActivity",
    "MoodCheckin",
    "Municipality",
    "MynaLink",
    "NurseVisit",
    "OAuthToken",
    "Objection",
    "QuarantinedRecord",
    "ReviewCapacity",
    "RulePromotion",
    "School",
    "SchoolAidStatus",
    "SchoolDay",
    "ScreeningRun",
    "Signal",
    "SigningKey",
    "StaffObservation",
    "StaffUser",
    "Student",
    "SupportAction",
    "SyncCursor",
    "SyncRun",
    "WebSession",
]
