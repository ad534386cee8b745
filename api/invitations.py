"""Invitations: a team invites a candidate to one version of a challenge, with a deadline and
an attempt budget. The candidate's token is shown once and stored as its hash.

An invitation's token works until ``expires_at`` (default: 30 days after the
deadline) unless the team revokes it; uploads stop at the deadline or when the
budget is spent. Submissions that were not gradable (our failure) are not
charged (``Submission.charged``).

A time box (``time_limit_minutes``) closes uploads that long after the
candidate first looked at the challenge (``started_at``: the page opened, or
the statement or starter kit fetched through the API), or at the deadline if
that comes first. Whether the candidate sees scores is fixed per invitation:
the team's setting when it was made, unless the invitation says otherwise.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import audit
from api.errors import ApiError, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from api.models import Invitation, Submission
from api.schemas import InvitationCreate, InvitationPublic, InvitationUpdate
from api.teams import TeamPrincipal
from api.tokens import kind_of, new_invitation_token, token_sha256
from grader.challenge import Challenge

TOKEN_LIFETIME_AFTER_DEADLINE = timedelta(days=30)
LONGEST_AHEAD = timedelta(days=3653)  # ten years: a later deadline is a typo (or "never"), not a plan


@dataclass(frozen=True)
class CandidatePrincipal:
    """Who is calling a candidate route: one invitation, and nothing else."""

    invitation_id: int
    team_id: int

    @property
    def actor(self) -> str:
        return f"candidate of invitation {self.invitation_id}"


def create_invitation(
    session: Session, team: TeamPrincipal, body: InvitationCreate, challenge: Challenge, now: datetime, *,
    server_key: bytes,
) -> tuple[Invitation, str]:
    """Add the invitation to ``session`` (the caller commits); return it and its token, shown this once.
    ``server_key`` derives the token (``api.tokens.derive_token``), so its link can be shown again."""
    if body.deadline <= now:
        raise ApiError(f"the deadline {body.deadline.isoformat()} has already passed; choose a time in the future")
    latest = now + LONGEST_AHEAD
    for field, moment in (("deadline", body.deadline), ("expires_at", body.expires_at)):
        if moment is not None and moment > latest:
            raise Unprocessable(f"the {field} {moment.isoformat()} is more than ten years away; choose a time "
                                f"before {_shown_time(latest)}")
    expires_at = body.expires_at or body.deadline + TOKEN_LIFETIME_AFTER_DEADLINE
    if expires_at < body.deadline:
        raise ApiError("expires_at is before the deadline: the candidate could not upload until the deadline")
    token, digest, salt = new_invitation_token(server_key)
    see_scores = team.candidates_see_scores if body.candidates_see_scores is None else body.candidates_see_scores
    invitation = Invitation(
        team_id=team.team_id, challenge_id=challenge.id, challenge_version=challenge.version,
        candidate=body.candidate.strip(), candidate_key=candidate_key(body.candidate), deadline=body.deadline,
        expires_at=expires_at, max_attempts=body.max_attempts, token_sha256=digest, token_salt=salt,
        time_limit_minutes=body.time_limit_minutes, started_at=None, candidates_see_scores=see_scores,
        revoked_at=None, created_at=now,
    )
    session.add(invitation)
    session.flush()
    audit.record(session, team_id=team.team_id, actor=team.actor, action="invitation.created",
                 subject=f"invitation {invitation.id}", now=now, challenge=challenge.id,
                 version=challenge.version, candidate=invitation.candidate,
                 time_limit_minutes=invitation.time_limit_minutes, candidates_see_scores=see_scores,
                 same_candidate_as=same_candidate(session, [invitation])[invitation.id])
    return invitation, token


def candidate_key(candidate: str) -> str:
    """The candidate as compared for "invited twice": case, spacing and Unicode forms folded; for an email
    address, a ``+tag`` dropped (and Gmail's ignored dots), since those reach the same inbox."""
    text = unicodedata.normalize("NFKC", candidate).strip().casefold()
    local, at, domain = text.rpartition("@")
    if not (at and local and domain):
        return " ".join(text.split())
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def same_candidate(session: Session, invitations: list[Invitation]) -> dict[int, list[int]]:
    """For each invitation, the team's other invitations of the same candidate (``candidate_key``) to the
    same challenge: a person invited twice, who would get twice the attempts."""
    if not invitations:
        return {}
    team_id = invitations[0].team_id
    keys = {invitation.candidate_key for invitation in invitations}
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in session.execute(
        select(Invitation.id, Invitation.candidate_key, Invitation.challenge_id)
        .where(Invitation.team_id == team_id, Invitation.candidate_key.in_(keys)).order_by(Invitation.id)
    ):
        found[(row.candidate_key, row.challenge_id)].append(row.id)
    return {invitation.id: [other for other in found[(invitation.candidate_key, invitation.challenge_id)]
                            if other != invitation.id] for invitation in invitations}


def update_invitation(session: Session, team: TeamPrincipal, invitation_id: int, body: InvitationUpdate,
                      now: datetime) -> Invitation:
    """Move the deadline or change the attempt budget (each change in the audit log, old and new)."""
    invitation = team_invitation(session, team, invitation_id, lock=True)
    if invitation.revoked_at is not None:
        raise Conflict(f"invitation {invitation.id} was revoked; invite the candidate again instead")
    changes: dict[str, dict[str, object]] = {}
    if body.deadline is not None and body.deadline != invitation.deadline:
        if body.deadline <= now:
            raise ApiError(f"the deadline {body.deadline.isoformat()} has already passed; choose a time in the "
                           "future (to close the invitation now, revoke it)")
        if body.deadline > now + LONGEST_AHEAD:
            raise Unprocessable(f"the deadline {body.deadline.isoformat()} is more than ten years away; choose a "
                                f"time before {_shown_time(now + LONGEST_AHEAD)}")
        changes["deadline"] = {"from": invitation.deadline.isoformat(), "to": body.deadline.isoformat()}
        invitation.deadline = body.deadline
        if invitation.expires_at < body.deadline + TOKEN_LIFETIME_AFTER_DEADLINE:
            later = body.deadline + TOKEN_LIFETIME_AFTER_DEADLINE  # the token outlives the new deadline
            changes["expires_at"] = {"from": invitation.expires_at.isoformat(), "to": later.isoformat()}
            invitation.expires_at = later
    if body.max_attempts is not None and body.max_attempts != invitation.max_attempts:
        changes["max_attempts"] = {"from": invitation.max_attempts, "to": body.max_attempts}
        invitation.max_attempts = body.max_attempts
    if changes:
        audit.record(session, team_id=team.team_id, actor=team.actor, action="invitation.updated",
                     subject=f"invitation {invitation.id}", now=now, **changes)
    return invitation


def team_invitation(session: Session, team: TeamPrincipal, invitation_id: int, *, lock: bool = False) -> Invitation:
    """The team's invitation, or 404 (also when it belongs to another team: nothing leaks)."""
    query = select(Invitation).where(Invitation.id == invitation_id, Invitation.team_id == team.team_id)
    invitation = session.scalar(query.with_for_update() if lock else query)
    if invitation is None:
        raise NotFound(f"your team has no invitation {invitation_id}")
    return invitation


def team_invitations(session: Session, team: TeamPrincipal, challenge_id: str | None = None) -> list[Invitation]:
    query = select(Invitation).where(Invitation.team_id == team.team_id)
    if challenge_id is not None:
        query = query.where(Invitation.challenge_id == challenge_id)
    return list(session.scalars(query.order_by(Invitation.id)))


def revoke_invitation(session: Session, team: TeamPrincipal, invitation_id: int, now: datetime) -> Invitation:
    invitation = team_invitation(session, team, invitation_id, lock=True)
    if invitation.revoked_at is None:
        invitation.revoked_at = now
        audit.record(session, team_id=team.team_id, actor=team.actor, action="invitation.revoked",
                     subject=f"invitation {invitation.id}", now=now)
    return invitation


def attempts_used(session: Session, invitation_ids: Iterable[int]) -> dict[int, int]:
    """Charged submissions per invitation (not gradable ones are not charged)."""
    ids = list(invitation_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Submission.invitation_id, func.count())
        .where(Submission.invitation_id.in_(ids), Submission.charged.is_(True))
        .group_by(Submission.invitation_id)
    ).all()
    counts = dict(rows)
    return {invitation_id: counts.get(invitation_id, 0) for invitation_id in ids}


def to_public(invitation: Invitation, *, attempts_used: int, candidate_url: str | None = None,
              same_candidate_as: list[int] | None = None) -> InvitationPublic:
    return InvitationPublic(
        id=invitation.id, challenge_id=invitation.challenge_id, challenge_version=invitation.challenge_version,
        candidate=invitation.candidate, deadline=invitation.deadline, expires_at=invitation.expires_at,
        max_attempts=invitation.max_attempts, attempts_used=attempts_used,
        revoked=invitation.revoked_at is not None, created_at=invitation.created_at,
        time_limit_minutes=invitation.time_limit_minutes, started_at=invitation.started_at,
        uploads_close_at=uploads_close_at(invitation), candidates_see_scores=invitation.candidates_see_scores,
        candidate_url=candidate_url, same_candidate_as=same_candidate_as or [],
    )


def authenticate_candidate(session: Session, token: str | None, now: datetime) -> CandidatePrincipal:
    """The invitation behind a candidate's token, or a 401 that says what is wrong with it."""
    if not token:
        raise Unauthorized("this route needs your invitation token: send the header 'Authorization: Bearer <token>'")
    if kind_of(token) == "team":
        raise Unauthorized("this is a team's API key; the routes under /api/v1/candidate need an invitation token")
    invitation = session.scalar(select(Invitation).where(Invitation.token_sha256 == token_sha256(token)))
    if invitation is None:
        raise Unauthorized("this invitation token is not known; check that it was copied whole")
    if invitation.revoked_at is not None:
        raise Unauthorized("this invitation was withdrawn by the hiring team")
    if invitation.expires_at <= now:
        raise Unauthorized(f"this invitation expired at {_shown_time(invitation.expires_at)}")
    return CandidatePrincipal(invitation_id=invitation.id, team_id=invitation.team_id)


def uploads_close_at(invitation: Invitation) -> datetime:
    """When uploads close for this candidate: the deadline, or the end of their time box if that is sooner."""
    if invitation.time_limit_minutes is None or invitation.started_at is None:
        return invitation.deadline
    return min(invitation.deadline, invitation.started_at + timedelta(minutes=invitation.time_limit_minutes))


def uploads_closed_reason(invitation: Invitation, used: int, now: datetime) -> str | None:
    """Why the candidate may not upload now (a sentence), or None when they may."""
    if invitation.revoked_at is not None:
        return "this invitation was withdrawn by the hiring team"
    if now >= invitation.deadline:
        return f"the deadline for this invitation passed at {_shown_time(invitation.deadline)}; uploads are closed"
    if now >= uploads_close_at(invitation):
        return (f"your time for this challenge ({_minutes(invitation.time_limit_minutes or 0)} from when you first "
                f"opened it) ran out at {_shown_time(uploads_close_at(invitation))}; uploads are closed")
    if used >= invitation.max_attempts:
        spent = ("the one attempt of this invitation is used" if invitation.max_attempts == 1
                 else f"all {invitation.max_attempts} attempts of this invitation are used")
        return f"{spent}; no more uploads are accepted (gradings that failed on our side do not count)"
    return None


def check_uploads_open(invitation: Invitation, used: int, now: datetime) -> None:
    """Raise 403 when the candidate may not upload now: deadline passed, time box over, or budget spent."""
    reason = uploads_closed_reason(invitation, used, now)
    if reason is None:
        return
    if invitation.revoked_at is not None:
        raise Unauthorized(reason)
    raise Forbidden(reason)


def _minutes(count: int) -> str:
    hours, minutes = divmod(count, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} hour{'s' if hours != 1 else ''}" if hours else f"{minutes} minute{'s' if minutes != 1 else ''}"


def _shown_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
