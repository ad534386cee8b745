"""Submissions: accepting a checked upload (budget, deadline, idempotency), and reading them back
for the team (with scores) and for the candidate (what the challenge's visibility allows).

Accepting is one write transaction that holds the invitation (SQLite: the
write lock; PostgreSQL: ``FOR UPDATE`` on its row), so two uploads at once
cannot both take the last attempt and a retried upload with the same
``Idempotency-Key`` finds the first one. The file enters the store only once
every check has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, Text, cast, select
from sqlalchemy.orm import Session

from api import audit
from api.errors import ApiError, Conflict, NotFound
from api.invitations import CandidatePrincipal, attempts_used, check_uploads_open
from api.jobs import queue
from api.jobs.state import WAITING, JobState
from api.models import Invitation, Job, Result, Submission
from api.schemas import CandidateFeedback, CandidateSubmission, SubmissionPublic
from api.service import Service
from api.teams import TeamPrincipal
from api.uploads import ReceivedFile
from grader.feedback import candidate_feedback
from grader.results import GradeResult

_IDEMPOTENCY_KEY_CHARS = 200


@dataclass(frozen=True)
class Accepted:
    submission: Submission
    replayed: bool  # an earlier upload with the same Idempotency-Key


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= _IDEMPOTENCY_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise ApiError(f"the Idempotency-Key header must be 1 to {_IDEMPOTENCY_KEY_CHARS} printable ASCII "
                       "characters, such as a UUID")
    return key


def precheck_upload(service: Service, candidate: CandidatePrincipal, key: str | None) -> None:
    """Refuse before the body is read when the upload could not be accepted anyway."""
    with service.db.read() as session:
        invitation = session.get_one(Invitation, candidate.invitation_id)
        if key is not None and _by_key(session, invitation.id, key) is not None:
            return  # a retry: answered with the first upload whatever the budget says now
        check_uploads_open(invitation, attempts_used(session, [invitation.id])[invitation.id], service.clock())


def accept_upload(
    service: Service, candidate: CandidatePrincipal, received: ReceivedFile, kind: str, key: str | None
) -> Accepted:
    """Store a checked upload as a submission with a queued job, or refuse it (nothing is stored)."""
    now = service.clock()
    with service.db.write() as session:
        invitation = session.scalars(
            select(Invitation).where(Invitation.id == candidate.invitation_id).with_for_update()
        ).one()
        if key is not None and (earlier := _by_key(session, invitation.id, key)) is not None:
            if earlier.sha256 != received.sha256:
                raise Conflict("this Idempotency-Key was already used for a different file; "
                               "use a new key for a new upload")
            return Accepted(earlier, replayed=True)
        check_uploads_open(invitation, attempts_used(session, [invitation.id])[invitation.id], now)
        challenge = service.challenge(invitation.challenge_id)
        if challenge.version != invitation.challenge_version:
            raise Conflict(f"the challenge has changed (version {invitation.challenge_version} is now "
                           f"{challenge.version}) since you were invited; ask the hiring team for a new invitation")
        store_key = service.store.put(received.path, received.sha256)
        submission = Submission(
            invitation_id=invitation.id, team_id=invitation.team_id, challenge_id=invitation.challenge_id,
            challenge_version=invitation.challenge_version, filename=received.filename, kind=kind,
            sha256=received.sha256, size_bytes=received.size_bytes, store_key=store_key,
            idempotency_key=key, charged=True, created_at=now,
        )
        session.add(submission)
        session.add(queue.new_job(submission, now))
        session.flush()
        audit.record(session, team_id=invitation.team_id, actor=candidate.actor, action="submission.created",
                     subject=f"submission {submission.id}", now=now, filename=submission.filename,
                     sha256=submission.sha256, size_bytes=submission.size_bytes)
        session.commit()
        return Accepted(submission, replayed=False)


def _by_key(session: Session, invitation_id: int, key: str) -> Submission | None:
    return session.scalar(
        select(Submission).where(Submission.invitation_id == invitation_id, Submission.idempotency_key == key)
    )


# -- the team's view ----------------------------------------------------------------------------

# The columns a submission's row shows (never the result's body: a listing of a thousand would parse them all).
_ROW = (
    Submission.id, Submission.invitation_id, Invitation.candidate, Submission.challenge_id,
    Submission.challenge_version, Submission.filename, Submission.kind, Submission.size_bytes, Submission.sha256,
    Submission.created_at, Submission.charged, Job.state, Job.last_error, Result.score, Result.max_score,
    Result.passed,
)


def _team_rows(team: TeamPrincipal) -> Select[*tuple[Any, ...]]:
    return (
        select(*_ROW)
        .join(Invitation, Invitation.id == Submission.invitation_id)
        .join(Job, Job.submission_id == Submission.id)
        .outerjoin(Result, Result.submission_id == Submission.id)
        .where(Submission.team_id == team.team_id)
        .order_by(Submission.id)
    )


def team_submissions(
    session: Session, team: TeamPrincipal, *, invitation_id: int | None = None, challenge_id: str | None = None,
    after_id: int | None = None, limit: int | None = None,
) -> list[SubmissionPublic]:
    """The team's submissions, oldest first; ``after_id`` and ``limit`` page through them (keyset paging:
    a page never repeats or skips a submission while new ones arrive)."""
    query = _team_rows(team)
    if invitation_id is not None:
        query = query.where(Submission.invitation_id == invitation_id)
    if challenge_id is not None:
        query = query.where(Submission.challenge_id == challenge_id)
    if after_id is not None:
        query = query.where(Submission.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    return [_public(row) for row in session.execute(query)]


def team_submission(session: Session, team: TeamPrincipal, submission_id: int) -> SubmissionPublic:
    row = session.execute(_team_rows(team).where(Submission.id == submission_id)).first()
    if row is None:
        raise NotFound(f"your team has no submission {submission_id}")
    return _public(row)


def team_result_json(session: Session, team: TeamPrincipal, submission_id: int) -> str:
    """The grader's full result of one of the team's submissions, as the JSON text stored (what
    ``GradeResult.model_dump`` made: it is served as is, never parsed); 404 or 409 when there is none."""
    row = session.execute(
        select(Job.state, Job.last_error, cast(Result.body, Text))
        .join(Submission, Submission.id == Job.submission_id)
        .outerjoin(Result, Result.submission_id == Submission.id)
        .where(Submission.id == submission_id, Submission.team_id == team.team_id)
    ).first()
    if row is None:
        raise NotFound(f"your team has no submission {submission_id}")
    state, last_error, body = row
    if body is None:
        error = last_error if state in (JobState.FAILED, JobState.NOT_GRADABLE) else None
        raise Conflict(f"submission {submission_id} has no result: its job is {_state_phrase(state)}"
                       + (f" ({error})" if error else ""))
    return str(body)


def team_result(session: Session, team: TeamPrincipal, submission_id: int) -> GradeResult:
    """The same result as a ``GradeResult``."""
    return GradeResult.model_validate_json(team_result_json(session, team, submission_id))


def _public(row: Row[Any]) -> SubmissionPublic:
    state = JobState(row.state)
    return SubmissionPublic(
        id=row.id, invitation_id=row.invitation_id, candidate=row.candidate, challenge_id=row.challenge_id,
        challenge_version=row.challenge_version, filename=row.filename, kind=row.kind, size_bytes=row.size_bytes,
        sha256=row.sha256, created_at=row.created_at, state=state, charged=row.charged, score=row.score,
        max_score=row.max_score, passed=row.passed,
        error=row.last_error if state in (JobState.FAILED, JobState.NOT_GRADABLE) else None,
        note=row.last_error if state in WAITING else None,
    )


# -- the candidate's view -----------------------------------------------------------------------

def candidate_submissions(
    session: Session, service: Service, candidate: CandidatePrincipal, submission_id: int | None = None
) -> list[CandidateSubmission]:
    """The candidate's own submissions (never another invitation's), with the feedback they may see."""
    invitation = session.get_one(Invitation, candidate.invitation_id)
    show_scores = invitation.candidates_see_scores
    now = service.clock()
    left = max(0, invitation.max_attempts - attempts_used(session, [invitation.id])[invitation.id])
    query = (
        select(Submission, Job, Result)
        .join(Job, Job.submission_id == Submission.id)
        .outerjoin(Result, Result.submission_id == Submission.id)
        .where(Submission.invitation_id == invitation.id)
        .order_by(Submission.id)
    )
    if submission_id is not None:
        query = query.where(Submission.id == submission_id)
    views = []
    for submission, job, result in session.execute(query):
        feedback = None
        if result is not None:
            data = candidate_feedback(GradeResult.model_validate(result.body),
                                      deadline_passed=now >= invitation.deadline, show_scores=show_scores)
            feedback = CandidateFeedback.model_validate(data)
        views.append(CandidateSubmission(
            id=submission.id, filename=submission.filename, kind=submission.kind,
            size_bytes=submission.size_bytes, sha256=submission.sha256, created_at=submission.created_at,
            state=_state(job), charged=submission.charged, attempts_left=left,
            message=_candidate_message(job, submission), feedback=feedback,
        ))
    if submission_id is not None and not views:
        raise NotFound(f"you have no submission {submission_id}")
    return views


def _candidate_message(job: Job, submission: Submission) -> str:
    if job.state == JobState.FAILED:
        if submission.charged:  # the grader refused the submission: the reason is the candidate's to fix
            return f"Could not be graded: {job.last_error}"
        return ("Could not be graded: the service stopped while grading it, more than once. "
                "It does not count against your attempts; you may submit again.")
    return {
        JobState.QUEUED: "Waiting for a grader.",
        JobState.RUNNING: "Being graded.",
        JobState.DONE: "Graded.",
        JobState.NOT_GRADABLE: ("Not gradable: something on our side failed. It does not count against your attempts; "
                         "you may submit again."),
    }[job.state]


def _state(job: Job) -> JobState:
    return JobState(job.state)


def _state_phrase(state: str) -> str:
    return "not gradable" if state == JobState.NOT_GRADABLE else str(state)

