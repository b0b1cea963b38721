"""FastAPI dependencies shared by every domain, defined once as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
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
