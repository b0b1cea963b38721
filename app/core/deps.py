"""FastAPI dependencies shared by every domain, defined once as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from app.core.config import Settings, get_settings
from app.core.db import get_engine, get_session

# scope="function": the transaction commits before the response leaves. With the default
# ("request") a yield dependency ends after the response is sent, so a browser following a
# redirect could arrive before the commit (a fresh sign-in looked signed out), and a failed
# commit would follow an answer that already said "done".
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]

UnitOfWork = Callable[[], AbstractContextManager[Session]]


def unit_of_work(request: Request) -> UnitOfWork:
    """The application's unit of work, `app.state.unit_of_work`: session_scope as create_app
    sets it, or a test's own. Kept on the app, not only behind a dependency, so that the token
    endpoint, a plain Starlette route outside FastAPI's dependency solving, gets the same one."""
    chosen: UnitOfWork = request.app.state.unit_of_work
    return chosen


async def get_unit_of_work(request: Request) -> UnitOfWork:
    """Opens a transaction of the handler's own choosing (commit on success, roll back on error).

    For a handler that does all its database work in one call on a worker thread: SessionDep
    opens and closes its session in two further trips to the thread pool, which on the token
    endpoint were a fifth of each exchange. Also for work that must commit apart from the
    request (the LINE webhook's inbox, then each event). `async def`, so FastAPI resolves it
    on the event loop rather than in a thread.
    """
    return unit_of_work(request)


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
