"""Re-grading a submission: its job goes back in the queue, its result is kept as a past version.

A team re-grades after a challenge was fixed, after an infrastructure failure,
or to get a second opinion on a noisy timed check. The current result moves to
``result_versions`` (who asked and when), the job is queued again, and the next
result becomes the current one: version ``1 + the number of past versions``.
The submission is graded against the challenge as it is now: if the challenge's
version changed since the upload, the submission moves to the new version (the
audit log says from which). The candidate's attempt budget is untouched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import audit
from api.errors import Conflict, NotFound
from api.jobs import queue
from api.jobs.state import FINISHED
from api.models import Job, Result, ResultVersion, Submission
from api.round_schemas import ResultVersionPublic
from api.teams import TeamPrincipal
from grader.challenge import Challenge


def regrade(session: Session, team: TeamPrincipal, submission_id: int, challenge: Challenge, now: datetime
            ) -> int:
    """Queue the team's submission for grading again; return the version its next result will be."""
    submission = session.scalars(
        select(Submission).where(Submission.id == submission_id, Submission.team_id == team.team_id)
        .with_for_update()).one_or_none()
    if submission is None:
        raise NotFound(f"your team has no submission {submission_id}")
    state = session.scalar(select(Job.state).where(Job.submission_id == submission.id))
    if state not in FINISHED:
        raise Conflict(f"submission {submission.id} is still {state}; re-grade it once its grading has ended")
    past = _past_versions(session, submission.id)
    result = session.scalar(select(Result).where(Result.submission_id == submission.id))
    kept = None
    if result is not None:
        kept = past + 1
        session.add(ResultVersion(
            submission_id=submission.id, version=kept, challenge_version=submission.challenge_version,
            status=result.status, score=result.score, max_score=result.max_score, passed=result.passed,
            body=result.body, created_at=result.created_at, superseded_at=now, superseded_by=team.actor))
        session.delete(result)
        session.flush()
    previous: dict[str, Any] = {"state": state, "score": result.score if result else None, "version": kept}
    if challenge.version != submission.challenge_version:
        previous["challenge_version"] = submission.challenge_version
        submission.challenge_version = challenge.version
    queue.requeue_finished(session, submission.id, now)
    audit.record(session, team_id=team.team_id, actor=team.actor, action="submission.regraded",
                 subject=f"submission {submission.id}", now=now, previous=previous,
                 challenge_version=challenge.version, next_version=(kept or past) + 1)
    return (kept or past) + 1


def result_versions(session: Session, team: TeamPrincipal, submission_id: int) -> list[ResultVersionPublic]:
    """Every result the submission had, oldest first; the last one is current (when it has one)."""
    owned = session.scalar(select(Submission.id).where(Submission.id == submission_id,
                                                       Submission.team_id == team.team_id))
    if owned is None:
        raise NotFound(f"your team has no submission {submission_id}")
    versions = [
        ResultVersionPublic(version=row.version, current=False, challenge_version=row.challenge_version,
                            status=row.status, score=row.score, max_score=row.max_score, passed=row.passed,
                            graded_at=row.created_at, superseded_at=row.superseded_at,
                            superseded_by=row.superseded_by)
        for row in session.scalars(select(ResultVersion).where(ResultVersion.submission_id == submission_id)
                                   .order_by(ResultVersion.version))
    ]
    current = session.execute(
        select(Result, Submission.challenge_version).join(Submission, Submission.id == Result.submission_id)
        .where(Result.submission_id == submission_id)).first()
    if current is not None:
        result, challenge_version = current
        versions.append(ResultVersionPublic(
            version=len(versions) + 1, current=True, challenge_version=challenge_version, status=result.status,
            score=result.score, max_score=result.max_score, passed=result.passed, graded_at=result.created_at,
            superseded_at=None, superseded_by=None))
    return versions


def past_result_body(session: Session, team: TeamPrincipal, submission_id: int, version: int) -> dict[str, object]:
    """A past version's full result (as ``/result`` gives the current one)."""
    row = session.scalar(
        select(ResultVersion).join(Submission, Submission.id == ResultVersion.submission_id)
        .where(ResultVersion.submission_id == submission_id, ResultVersion.version == version,
               Submission.team_id == team.team_id))
    if row is None:
        raise NotFound(f"submission {submission_id} has no past result version {version} "
                       "(GET .../results lists them; the current one is at .../result)")
    return dict(row.body)


def _past_versions(session: Session, submission_id: int) -> int:
    return session.scalar(select(func.count()).select_from(ResultVersion)
                          .where(ResultVersion.submission_id == submission_id)) or 0
