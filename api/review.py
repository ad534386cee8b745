"""A team's review of its candidates: notes on submissions, and a decision on each candidate.

Notes are plain text, attached to one submission, kept with their author and
time; they are never shown to the candidate. A decision (advance, hold or
reject, with an optional reason) is made on the candidate's invitation; every
decision is kept, and the newest one is the candidate's current decision. Both
are written to the audit log in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import audit
from api.errors import NotFound
from api.invitations import team_invitation
from api.models import ReviewDecision, ReviewNote, Submission
from api.round_schemas import DecisionCreate, DecisionPublic, NoteCreate, NotePublic
from api.teams import TeamPrincipal


def add_note(session: Session, team: TeamPrincipal, submission_id: int, body: NoteCreate, now: datetime
             ) -> NotePublic:
    submission = _team_submission(session, team, submission_id)
    note = ReviewNote(team_id=team.team_id, invitation_id=submission.invitation_id, submission_id=submission.id,
                      body=body.body.strip() or body.body, author=team.actor, created_at=now)
    session.add(note)
    session.flush()
    audit.record(session, team_id=team.team_id, actor=team.actor, action="note.created",
                 subject=f"submission {submission.id}", now=now, note=note.id, characters=len(note.body))
    return _note(note)


def notes(session: Session, team: TeamPrincipal, *, submission_id: int | None = None,
          invitation_id: int | None = None) -> list[NotePublic]:
    """The team's notes on one submission, or on every submission of one invitation; oldest first."""
    query = select(ReviewNote).where(ReviewNote.team_id == team.team_id)
    if submission_id is not None:
        _team_submission(session, team, submission_id)
        query = query.where(ReviewNote.submission_id == submission_id)
    if invitation_id is not None:
        query = query.where(ReviewNote.invitation_id == invitation_id)
    return [_note(note) for note in session.scalars(query.order_by(ReviewNote.id))]


def decide(session: Session, team: TeamPrincipal, invitation_id: int, body: DecisionCreate, now: datetime
           ) -> DecisionPublic:
    invitation = team_invitation(session, team, invitation_id)
    decision = ReviewDecision(team_id=team.team_id, invitation_id=invitation.id, decision=body.decision,
                              reason=body.reason.strip(), author=team.actor, created_at=now)
    session.add(decision)
    session.flush()
    audit.record(session, team_id=team.team_id, actor=team.actor, action="decision.made",
                 subject=f"invitation {invitation.id}", now=now, decision=body.decision,
                 candidate=invitation.candidate)
    return _decision(decision)


def decisions(session: Session, team: TeamPrincipal, invitation_id: int) -> list[DecisionPublic]:
    """Every decision on the candidate, oldest first (the last one is current)."""
    team_invitation(session, team, invitation_id)
    return [_decision(row) for row in session.scalars(
        select(ReviewDecision).where(ReviewDecision.invitation_id == invitation_id).order_by(ReviewDecision.id))]


def current_decisions(session: Session, team: TeamPrincipal, invitation_ids: list[int] | None = None
                      ) -> dict[int, DecisionPublic]:
    """The newest decision of each of the team's invitations that has one (of ``invitation_ids``, if given)."""
    newest = (select(func.max(ReviewDecision.id)).where(ReviewDecision.team_id == team.team_id)
              .group_by(ReviewDecision.invitation_id))
    if invitation_ids is not None:
        if not invitation_ids:
            return {}
        newest = newest.where(ReviewDecision.invitation_id.in_(invitation_ids))
    rows = session.scalars(select(ReviewDecision).where(ReviewDecision.id.in_(newest)))
    return {row.invitation_id: _decision(row) for row in rows}


def _team_submission(session: Session, team: TeamPrincipal, submission_id: int) -> Submission:
    submission = session.scalar(select(Submission).where(Submission.id == submission_id,
                                                         Submission.team_id == team.team_id))
    if submission is None:
        raise NotFound(f"your team has no submission {submission_id}")
    return submission


def _note(note: ReviewNote) -> NotePublic:
    return NotePublic(id=note.id, submission_id=note.submission_id, invitation_id=note.invitation_id,
                      body=note.body, author=note.author, created_at=note.created_at)


def _decision(row: ReviewDecision) -> DecisionPublic:
    return DecisionPublic(id=row.id, invitation_id=row.invitation_id, decision=row.decision,  # type: ignore[arg-type]
                          reason=row.reason, author=row.author, created_at=row.created_at)
