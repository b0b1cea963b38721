"""Who acts on child data: the kinds of actor every audit entry and policy decision names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    staff = "staff"  # a school or city staff member, in the staff console
    screening = "screening"  # a screening run of the early-warning rules
    connector = "connector"  # a fetch from an upstream system
    partner_client = "partner_client"  # a registered OAuth client through the resource API
    notify = "notify"  # the LINE notification sender
    guardian = "guardian"  # the family, on their own pages
    student = "student"  # the child, on their own page (an objection)
    system = "system"  # tsunagu itself on a schedule, e.g. a consent reaching its expiry


@dataclass(frozen=True)
class Actor:
    """Who acts: `ref` is a stable id (staff login, run id, client id), never a person's name."""

    kind: ActorKind
    ref: str
    organisation: str
    role: str | None = None
