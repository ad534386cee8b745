"""Invitations: a team invites a candidate to one version of a challenge, with a deadline and
an attempt budget. The candidate's token is shown once and stored as its hash.

An invitation's token works until ``expires_at`` (default: 30 days after the
deadline) unless the team revokes it; uploads stop at the deadline or when the
budget is spent. Submissions that were not gradable (our failure) are not
charged (``Submission.charged``).
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
from api.errors import ApiError, Conflict, Forbidden, NotFound, Unauthorized
from api.models import Invitation, Submission
from api.schemas import InvitationCreate, InvitationCreated, InvitationPublic, InvitationUpdate
from api.teams import TeamPrincipal
from api.tokens import kind_of, new_token, token_sha256
from grader.challenge import Challenge

TOKEN_LIFETIME_AFTER_DEADLINE = timedelta(days=30)


@dataclass(frozen=True)
class CandidatePrincipal:
    """Who is calling a candidate route: one invitation, and nothing else."""

    invitation_id: int
    team_id: int

    @property
    def actor(self) -> str:
        return f"candidate of invitation {self.invitation_id}"


def create_invitation(
    session: Session, team: TeamPrincipal, body: InvitationCreate, challenge: Challenge, now: datetime
) -> InvitationCreated:
    if body.deadline <= now:
        raise ApiError(f"the deadline {body.deadline.isoformat()} has already passed; choose a time in the future")
    expires_at = body.expires_at or body.deadline + TOKEN_LIFETIME_AFTER_DEADLINE
    if expires_at < body.deadline:
        raise ApiError("expires_at is before the deadline: the candidate could not upload until the deadline")
    token, digest = new_token("candidate")
    candidate = body.candidate.strip()
    invitation = Invitation(
        team_id=team.team_id, challenge_id=challenge.id, challenge_version=challenge.version,
        candidate=candidate, candidate_key=candidate_key(candidate), deadline=body.deadline, expires_at=expires_at,
        max_attempts=body.max_attempts, token_sha256=digest, revoked_at=None, created_at=now,
    )
    session.add(invitation)
    session.flush()
    same = same_candidate(session, [invitation]).get(invitation.id, [])
    audit.record(session, team_id=team.team_id, actor=team.actor, action="invitation.created",
                 subject=f"invitation {invitation.id}", now=now, challenge=challenge.id,
                 version=challenge.version, candidate=invitation.candidate, same_candidate_as=same)
    public = to_public(invitation, attempts_used=0, same_candidate_as=same)
    return InvitationCreated(**public.model_dump(), token=token)


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


def to_public(invitation: Invitation, *, attempts_used: int, same_candidate_as: list[int] | None = None
              ) -> InvitationPublic:
    return InvitationPublic(
        id=invitation.id, challenge_id=invitation.challenge_id, challenge_version=invitation.challenge_version,
        candidate=invitation.candidate, deadline=invitation.deadline, expires_at=invitation.expires_at,
        max_attempts=invitation.max_attempts, attempts_used=attempts_used,
        revoked=invitation.revoked_at is not None, created_at=invitation.created_at,
        same_candidate_as=same_candidate_as or [],
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


def check_uploads_open(invitation: Invitation, used: int, now: datetime) -> None:
    """Raise 403 when the candidate may not upload now: deadline passed, or budget spent."""
    if invitation.revoked_at is not None:
        raise Unauthorized("this invitation was withdrawn by the hiring team")
    if now >= invitation.deadline:
        raise Forbidden(f"the deadline for this invitation passed at {_shown_time(invitation.deadline)}; "
                        "uploads are closed")
    if used >= invitation.max_attempts:
        raise Forbidden(f"all {invitation.max_attempts} attempts of this invitation are used; "
                        "no more uploads are accepted (gradings that failed on our side do not count)")


def _shown_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
