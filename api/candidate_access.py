"""How a candidate gets in: the link in their invitation, exchanged once for a cookie, and the clock of a
time box started by their first look at the challenge.

The link is ``<public URL>/c/<invitation token>``. The token is derived from
the server's secret key and a random salt kept with the invitation
(HMAC-SHA256, as webhook secrets are), so the team's pages can show the link
again while the database holds only the token's SHA-256; a copy of the
database alone cannot make one. A token made under another server key (the key
was changed) still works, but its link can no longer be shown.

Opening the link checks the token, opens a candidate session and redirects to
the clean ``/candidate``: the browser keeps a random session token in a cookie
(HttpOnly, SameSite=Lax so the link works when clicked in an e-mail, limited
to ``/candidate``), the database its SHA-256 (``candidate_sessions``). The
invitation token never stays in the address bar, the history or the access
log (``api.logs`` masks it there). Revoking the invitation ends its sessions.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api import audit
from api.invitations import CandidatePrincipal, authenticate_candidate
from api.models import CandidateSession, Invitation
from api.tokens import rederive_token, token_sha256

LINK_PATH = "/c"
PAGE_PATH = "/candidate"
COOKIE = "cvgrade_candidate"
SESSION_DAYS = 30
_SESSION_PREFIX = "cvgc_"


def invitation_token(server_key: bytes, invitation: Invitation) -> str | None:
    """The invitation's token again, or None: made before links existed, or under another server key."""
    if invitation.token_salt is None:
        return None
    return rederive_token(server_key, invitation.token_salt, invitation.token_sha256)


def candidate_url(server_key: bytes, invitation: Invitation, base_url: str) -> str | None:
    """The link a candidate opens (``base_url`` is the service's public URL), or None when it cannot be made."""
    token = invitation_token(server_key, invitation)
    return f"{base_url.rstrip('/')}{LINK_PATH}/{token}" if token else None


def start_clock(session: Session, invitation_id: int, now: datetime, actor: str) -> bool:
    """Record the candidate's first look at the challenge (a time box counts from it); True the first time.
    The caller commits."""
    started = session.execute(
        update(Invitation).where(Invitation.id == invitation_id, Invitation.started_at.is_(None))
        .values(started_at=now)
    )
    if started.rowcount != 1:  # type: ignore[attr-defined]
        return False
    invitation = session.get_one(Invitation, invitation_id)
    audit.record(session, team_id=invitation.team_id, actor=actor, action="invitation.started",
                 subject=f"invitation {invitation_id}", now=now, time_limit_minutes=invitation.time_limit_minutes)
    return True


def open_session(session: Session, token: str, now: datetime) -> tuple[CandidatePrincipal, str]:
    """Check an invitation token (``Unauthorized`` with the reason), start its clock and open a session;
    return the candidate and the cookie's token (only its hash is stored). The caller commits."""
    candidate = authenticate_candidate(session, token, now)
    invitation = session.get_one(Invitation, candidate.invitation_id)
    session.execute(delete(CandidateSession).where(CandidateSession.expires_at < now))
    cookie = _SESSION_PREFIX + secrets.token_urlsafe(32)
    expires_at = min(invitation.expires_at, now + timedelta(days=SESSION_DAYS))
    session.add(CandidateSession(invitation_id=invitation.id, token_sha256=token_sha256(cookie), created_at=now,
                                 expires_at=expires_at))
    start_clock(session, invitation.id, now, candidate.actor)
    audit.record(session, team_id=invitation.team_id, actor=candidate.actor, action="candidate.page_opened",
                 subject=f"invitation {invitation.id}", now=now)
    return candidate, cookie


def session_candidate(session: Session, cookie: str | None, now: datetime) -> CandidatePrincipal | None:
    """The candidate of a live session, or None (no cookie, unknown, expired, or the invitation withdrawn)."""
    if not cookie or not cookie.startswith(_SESSION_PREFIX) or len(cookie) > 100:
        return None
    row = session.execute(
        select(CandidateSession, Invitation).join(Invitation, Invitation.id == CandidateSession.invitation_id)
        .where(CandidateSession.token_sha256 == token_sha256(cookie))
    ).first()
    if row is None:
        return None
    login, invitation = row
    if login.expires_at <= now or invitation.revoked_at is not None or invitation.expires_at <= now:
        return None
    return CandidatePrincipal(invitation_id=invitation.id, team_id=invitation.team_id)


def close_session(session: Session, cookie: str | None) -> None:
    if cookie:
        session.execute(delete(CandidateSession).where(CandidateSession.token_sha256 == token_sha256(cookie)))
