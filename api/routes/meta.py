"""Routes without authentication: is the service up."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import ReadSession, ServiceDep
from api.schemas import GradingHealth, Health
from grader import __version__

router = APIRouter(tags=["service"])


@router.get("/health", summary="Whether the service and its database answer, and whether it can grade")
def health(service: ServiceDep, session: ReadSession) -> Health:
    session.execute(text("SELECT 1"))
    state = service.backend_monitor.state()
    return Health(status="ok" if state.ready else "degraded", version=__version__, database=service.db.dialect,
                  grading=GradingHealth(backend=state.backend, chosen=state.chosen, ready=state.ready,
                                        problem=state.problem))
