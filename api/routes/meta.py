"""Routes without authentication: is the service up."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import ReadSession, ServiceDep
from api.schemas import Health
from grader import __version__

router = APIRouter(tags=["service"])


@router.get("/health", summary="Whether the service and its database answer")
def health(service: ServiceDep, session: ReadSession) -> Health:
    session.execute(text("SELECT 1"))
    return Health(status="ok", version=__version__, database=service.db.dialect)
