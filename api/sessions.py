"""Dashboard logins: a team's API key, typed once into the login form, opens a session.

The browser keeps a random session token in a cookie (HttpOnly, SameSite=Strict,
Secure when the page was served over https); the database keeps its SHA-256
(``dashboard_sessions``), the team and the API key that opened it. A session
ends at logout, after ``SESSION_HOURS``, or at once when its API key is revoked.
The key itself is never stored in the cookie or anywhere else.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api import audit
from api.errors import Unauthorized
from api.models import ApiKey, DashboardSession, Team
from api.teams import TeamPrincipal, authenticate_team
from api.tokens import token_sha256

COOKIE = "cvgrade_session"
SESSION_HOURS = 12
_TOKEN_PREFIX = "cvgs_"  # noqa: S105  # a prefix, not a secret


def log_in(session: Session, api_key: str, now: datetime) -> tuple[TeamPrincipal, str]:
    """Check ``api_key`` (``Unauthorized`` with the reason if it is not a live team key) and open a
    session; return the team and the cookie's token (only its hash is stored)."""
    if not api_key.strip():
        raise Unauthorized("enter your team's API key (it starts with cvgk_)")
    team = authenticate_team(session, api_key.strip())
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(DashboardSession(team_id=team.team_id, api_key_id=team.key_id, token_sha256=token_sha256(token),
                                 created_at=now, expires_at=now + timedelta(hours=SESSION_HOURS)))
    audit.record(session, team_id=team.team_id, actor=team.actor, action="dashboard.login",
                 subject=f"team {team.team_id}", now=now)
    return team, token


def team_of(session: Session, token: str | None, now: datetime) -> TeamPrincipal | None:
    """The team of a live session, or None (no cookie, unknown, expired, or its key revoked)."""
    if not token or not token.startswith(_TOKEN_PREFIX) or len(token) > 100:
        return None
    row = session.execute(
        select(DashboardSession, ApiKey, Team)
        .join(ApiKey, ApiKey.id == DashboardSession.api_key_id)
        .join(Team, Team.id == DashboardSession.team_id)
        .where(DashboardSession.token_sha256 == token_sha256(token))
    ).first()
    if row is None:
        return None
    login, key, team = row
    if login.expires_at <= now or key.revoked_at is not None or key.team_id != team.id:
        return None
    return TeamPrincipal(team_id=team.id, team_name=team.name, key_id=key.id,
                         candidates_see_scores=team.candidates_see_scores)


def log_out(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(DashboardSession).where(DashboardSession.token_sha256 == token_sha256(token)))
