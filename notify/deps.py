"""FastAPI dependencies of notify: a way to open transactions outside the request's own."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from app.core.db import session_scope

SessionFactory = Callable[[], AbstractContextManager[Session]]


def get_session_factory() -> SessionFactory:
    """Opens a unit of work (commit on success): the webhook commits its inbox rows before it
    answers LINE, and handles each event after the answer, each in a transaction of its own."""
    return session_scope


SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]
