"""Audit events: who did what, to what, when. Written in the same transaction as the change itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import AuditEvent


def record(
    session: Session, *, team_id: int | None, actor: str, action: str, subject: str, now: datetime, **detail: Any
) -> None:
    """Add an event to ``session``; it is stored when (and only if) the caller commits."""
    session.add(AuditEvent(team_id=team_id, actor=actor, action=action, subject=subject,
                           detail=detail, created_at=now))


def team_events(session: Session, team_id: int, *, limit: int = 100, before_id: int | None = None) -> list[AuditEvent]:
    """A team's events, newest first."""
    query = select(AuditEvent).where(AuditEvent.team_id == team_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))
