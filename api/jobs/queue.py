"""The job queue, in the database: claim, heartbeat, finish, and take back jobs whose worker died.

A job's life::

    queued --claim--> running --finish--> done | failed | not_gradable
      ^                  |
      +---- requeue -----+  (no heartbeat for stale_after_s: its worker died; at most max_runs
      |                      runs, then failed with the reason)
      +-- retry later ---+  (``finish`` of a grading whose timed check found the machine too busy
                             to decide: queued again, not charged, after a growing delay; see
                             ``timing_retry_delay_s``. Then not_gradable.)

A queued job waiting for such a retry keeps the time it may start again in
``heartbeat_at`` (which a queued job otherwise leaves empty); ``claim_next``
passes it over until then.

Exactly once: a worker claims a job in one write transaction (SQLite: ``BEGIN
IMMEDIATE`` then ``UPDATE ... WHERE id = ? AND state = 'queued'``; PostgreSQL:
``SELECT ... FOR UPDATE SKIP LOCKED``), and its result is stored only if the
job is still its own (same worker, same run) when it finishes. A worker whose
job was taken back in the meantime throws its result away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from api import audit, webhooks
from api.db import Database
from api.jobs.state import FINISHED, FinishedState, JobState
from api.models import Job, Result, Submission
from grader.results import GradeResult

log = logging.getLogger("cvgrade.api.jobs.queue")
WORKER_ACTOR = "grading worker"
# An inconclusive grading (the machine too busy to time it, after the judge's own tries) is queued
# again after these delays, one per retry; the run after the last is final.
TIMING_RETRY_DELAYS_S = (120.0, 600.0)
RETRYING = "retrying: the machine was too busy to time it"


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds, and what it needs to grade it."""

    job_id: int
    run: int
    worker: str
    submission_id: int
    team_id: int
    challenge_id: str
    challenge_version: str
    store_key: str
    filename: str


@dataclass(frozen=True)
class JobOutcome:
    state: FinishedState
    result: GradeResult | None
    error: str | None
    charged: bool  # counts against the candidate's attempt budget


def still_held(job: ClaimedJob) -> ColumnElement[bool]:
    """The job's row while it is still this holder's run: anything else must leave it alone."""
    return and_(Job.id == job.job_id, Job.state == JobState.RUNNING, Job.claimed_by == job.worker,
                Job.runs == job.run)


def new_job(submission: Submission, now: datetime) -> Job:
    return Job(submission=submission, state=JobState.QUEUED, runs=0, created_at=now)


def claim_next(db: Database, worker: str, now: datetime) -> ClaimedJob | None:
    """Take the oldest queued job for ``worker``, or None when there is none."""
    with db.write() as session:
        candidate = session.scalar(
            select(Job.id).where(Job.state == JobState.QUEUED, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at <= now))
            .order_by(Job.id).limit(1).with_for_update(skip_locked=True)
        )
        if candidate is None:
            return None
        claimed = session.execute(
            update(Job)
            .where(Job.id == candidate, Job.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, runs=Job.runs + 1, claimed_by=worker, heartbeat_at=now, started_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # cannot happen under the lock; never grade twice
            session.rollback()
            return None
        job = session.get_one(Job, candidate)
        submission = job.submission
        session.commit()
        return ClaimedJob(
            job_id=job.id, run=job.runs, worker=worker, submission_id=submission.id, team_id=submission.team_id,
            challenge_id=submission.challenge_id, challenge_version=submission.challenge_version,
            store_key=submission.store_key, filename=submission.filename,
        )


def heartbeat(db: Database, jobs: list[ClaimedJob], now: datetime) -> None:
    """Tell the database these jobs' workers are alive."""
    if not jobs:
        return
    with db.write() as session:
        for job in jobs:
            session.execute(
                update(Job)
                .where(still_held(job))
                .values(heartbeat_at=now)
            )
        session.commit()


def timing_retry_delay_s(
    outcome: JobOutcome, run: int, delays_s: tuple[float, ...] = TIMING_RETRY_DELAYS_S
) -> float | None:
    """How long to wait before grading again, when ``outcome`` is an inconclusive timing and retries are left.

    The one rule for every runner (in-process workers and the fleet both store outcomes through
    ``finish``): only a grading that was not gradable *because* a timed check could not decide
    (``GradeResult.inconclusive``) is tried again, at most ``len(delays_s)`` times.
    """
    result = outcome.result
    if outcome.state != JobState.NOT_GRADABLE or result is None or not result.inconclusive:
        return None
    return delays_s[run - 1] if 1 <= run <= len(delays_s) else None


def finish(db: Database, job: ClaimedJob, outcome: JobOutcome, now: datetime) -> bool:
    """Store the outcome if the job is still ``job.worker``'s; return whether it was stored.

    An inconclusive timing with retries left is not stored: the job is queued again for later.
    """
    delay_s = timing_retry_delay_s(outcome, job.run)
    if delay_s is not None:
        return _retry_later(db, job, outcome, now, delay_s)
    if outcome.result is not None and outcome.result.inconclusive and job.run > 1:
        outcome = JobOutcome(outcome.state, outcome.result, (
            f"{outcome.error} (graded {job.run} times over a while: the machine stayed too busy to time it)"
        ), charged=False)
    with db.write() as session:
        owned = session.execute(
            update(Job)
            .where(still_held(job))
            .values(state=outcome.state, finished_at=now, heartbeat_at=now, last_error=outcome.error)
        )
        if owned.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            log.warning("job %s was taken from %s while it graded; its result is thrown away", job.job_id, job.worker)
            return False
        if outcome.result is not None:
            result = outcome.result
            session.add(Result(
                submission_id=job.submission_id, status=result.status, score=result.score,
                max_score=result.max_score, passed=result.passed, body=result.model_dump(mode="json"),
                created_at=now,
            ))
        if not outcome.charged:
            session.execute(update(Submission).where(Submission.id == job.submission_id).values(charged=False))
        audit.record(session, team_id=job.team_id, actor=WORKER_ACTOR, action=f"job.{outcome.state}",
                     subject=f"submission {job.submission_id}", now=now, job=job.job_id, run=job.run,
                     worker=job.worker, error=outcome.error,
                     score=outcome.result.score if outcome.result is not None else None)
        graded = outcome.result
        webhooks.enqueue_finished(
            session, job.submission_id, state=outcome.state, score=graded.score if graded else None,
            max_score=graded.max_score if graded else None, passed=graded.passed if graded else None,
            error=outcome.error, charged=outcome.charged, now=now)
        session.commit()
        return True


def _retry_later(db: Database, job: ClaimedJob, outcome: JobOutcome, now: datetime, delay_s: float) -> bool:
    """Queue the job again, not before ``now + delay_s``; nothing is stored, nothing is charged."""
    not_before = now + timedelta(seconds=delay_s)
    tries = len(TIMING_RETRY_DELAYS_S) + 1
    note = f"{RETRYING} (try {job.run} of {tries}); trying again after {not_before:%H:%M:%S} UTC"
    with db.write() as session:
        requeued = session.execute(
            update(Job)
            .where(still_held(job))
            .values(state=JobState.QUEUED, claimed_by=None, heartbeat_at=not_before, started_at=None, last_error=note)
        )
        if requeued.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return False
        audit.record(session, team_id=job.team_id, actor=WORKER_ACTOR, action="job.retry_later",
                     subject=f"submission {job.submission_id}", now=now, job=job.job_id, run=job.run,
                     worker=job.worker, error=outcome.error)
        session.commit()
    log.info("job %s: %s", job.job_id, note)
    return True


def release(db: Database, job: ClaimedJob, now: datetime) -> bool:
    """Put a job back in the queue because its worker is stopping (shutdown); the run does not count."""
    with db.write() as session:
        released = session.execute(
            update(Job)
            .where(still_held(job))
            .values(state=JobState.QUEUED, runs=Job.runs - 1, claimed_by=None, heartbeat_at=None, started_at=None)
        )
        if released.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return False
        audit.record(session, team_id=job.team_id, actor=WORKER_ACTOR, action="job.released",
                     subject=f"submission {job.submission_id}", now=now, job=job.job_id, worker=job.worker)
        session.commit()
        return True


def requeue_stale(db: Database, now: datetime, *, stale_after_s: float, max_runs: int) -> list[str]:
    """Take back running jobs with no heartbeat for ``stale_after_s``: queue them again, or fail
    them once they have been started ``max_runs`` times. Return what was done, one line per job."""
    cutoff = now - timedelta(seconds=stale_after_s)
    done: list[str] = []
    with db.write() as session:
        stale = session.scalars(
            select(Job).where(Job.state == JobState.RUNNING, Job.heartbeat_at < cutoff)
            .order_by(Job.id).with_for_update(skip_locked=True)
        ).all()
        for job in stale:
            silent_s = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else stale_after_s
            why = f"its worker {job.claimed_by} stopped (no heartbeat for {silent_s:.0f} s) during run {job.runs}"
            if job.runs >= max_runs:
                job.state, job.finished_at = JobState.FAILED, now
                job.last_error = f"{why}; not retried: it was started {job.runs} times, the limit"
                job.submission.charged = False  # our service died, not the candidate's code
            else:
                job.state, job.claimed_by, job.heartbeat_at, job.started_at = JobState.QUEUED, None, None, None
                job.last_error = f"{why}; queued again"
            audit.record(session, team_id=job.submission.team_id, actor=WORKER_ACTOR,
                         action="job.failed" if job.state == JobState.FAILED else "job.requeued",
                         subject=f"submission {job.submission_id}", now=now, job=job.id, error=job.last_error)
            if job.state == JobState.FAILED:
                webhooks.enqueue_finished(session, job.submission_id, state=JobState.FAILED, score=None, max_score=None,
                                          passed=None, error=job.last_error, charged=False, now=now)
            done.append(f"job {job.id}: {job.last_error}")
        session.commit()
    for line in done:
        log.warning("%s", line)
    return done


def requeue_finished(session: Session, submission_id: int, now: datetime) -> Job:
    """Queue a finished job again (a re-grade), in the caller's write transaction. Its ``runs`` keeps
    counting, so a worker still holding an earlier run can never store into the new one."""
    job = session.scalars(select(Job).where(Job.submission_id == submission_id).with_for_update()).one()
    if job.state not in FINISHED:
        raise ValueError(f"job {job.id} is {job.state}, not finished")
    job.state, job.claimed_by, job.heartbeat_at = JobState.QUEUED, None, None
    job.started_at, job.finished_at, job.last_error = None, None, None
    return job
