"""Storage, on SQLite and on a real PostgreSQL: the schema, secrets at rest, times, and the job
queue's guarantees (each job claimed once, a dead worker's job taken back, a late result refused)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from api.db import Database, current_revision, migrate, newest_revision
from api.jobs import queue
from api.jobs.queue import JobOutcome
from api.jobs.state import JobState
from api.models import ApiKey, Base, Invitation, Job, Result, Submission, Team
from api.store import FileUploadStore
from api.teams import authenticate_team, create_team
from api.tokens import token_sha256

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def seed_jobs(database: Database, count: int) -> list[int]:
    """A team, an invitation and ``count`` submissions, each with a queued job."""
    with database.write() as session:
        team, _, _ = create_team(session, "acme", NOW)
        invitation = Invitation(team_id=team.id, challenge_id="tiny", challenge_version="1.0.0", candidate="ada",
                                deadline=NOW + timedelta(days=1), expires_at=NOW + timedelta(days=30),
                                max_attempts=count, token_sha256="0" * 64, revoked_at=None, created_at=NOW)
        session.add(invitation)
        session.flush()
        for number in range(count):
            submission = Submission(
                invitation_id=invitation.id, team_id=team.id, challenge_id="tiny", challenge_version="1.0.0",
                filename=f"s{number}.py", kind="py", sha256=f"{number:064x}", size_bytes=1, store_key=f"{number:064x}",
                idempotency_key=None, charged=True, created_at=NOW,
            )
            session.add(submission)
            session.add(queue.new_job(submission, NOW))
        session.commit()
        return list(session.scalars(select(Job.id).order_by(Job.id)))


def test_migrations_build_exactly_the_models_schema_and_run_again_harmlessly(database_url: str) -> None:
    database = Database(database_url)
    migrate(database)  # the fixture already migrated: a second run changes nothing
    assert current_revision(database) == newest_revision()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       Base.metadata)
    assert differences == []
    database.dispose()


def test_api_keys_are_stored_as_hashes_and_shown_once(database_url: str) -> None:
    database = Database(database_url)
    with database.write() as session:
        team, key, token = create_team(session, "acme", NOW)
        session.commit()
    with database.read() as session:
        stored = session.get_one(ApiKey, key.id)
        assert stored.token_sha256 == token_sha256(token) and token not in stored.prefix + stored.token_sha256
        dump = " ".join(str(value) for value in session.execute(text("SELECT * FROM api_keys")).one())
        assert token not in dump
        assert authenticate_team(session, token).team_id == team.id
    database.dispose()


def test_times_come_back_timezone_aware_and_equal(database_url: str) -> None:
    database = Database(database_url)
    moment = datetime(2030, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)
    with database.write() as session:
        session.add(Team(name="acme", candidates_see_scores=False, created_at=moment))
        session.commit()
    with database.read() as session:
        assert session.scalars(select(Team.created_at)).one() == moment
    database.dispose()


def test_concurrent_workers_claim_each_job_exactly_once(database_url: str) -> None:
    database = Database(database_url)
    job_ids = seed_jobs(database, 30)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := queue.claim_next(database, name, NOW)) is not None:
            with lock:
                claimed.append(job.job_id)

    threads = [threading.Thread(target=worker, args=(f"w{number}",)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == job_ids  # every job, none twice
    with database.read() as session:
        assert {(job.state, job.runs) for job in session.scalars(select(Job))} == {("running", 1)}
    database.dispose()


def test_a_silent_job_is_queued_again_then_failed_at_the_run_limit_without_charging(database_url: str) -> None:
    database = Database(database_url)
    [job_id] = seed_jobs(database, 1)
    first = queue.claim_next(database, "dead-worker", NOW)
    assert first is not None
    later = NOW + timedelta(seconds=61)
    assert queue.requeue_stale(database, NOW + timedelta(seconds=30), stale_after_s=60, max_runs=2) == []
    [line] = queue.requeue_stale(database, later, stale_after_s=60, max_runs=2)
    assert "dead-worker" in line and "queued again" in line
    second = queue.claim_next(database, "another-dead-worker", later)
    assert second is not None and second.run == 2
    [line] = queue.requeue_stale(database, later + timedelta(seconds=61), stale_after_s=60, max_runs=2)
    assert "not retried" in line
    with database.read() as session:
        job = session.get_one(Job, job_id)
        assert (job.state, job.runs) == ("failed", 2) and "started 2 times" in (job.last_error or "")
        assert job.submission.charged is False
    database.dispose()


def test_a_worker_whose_job_was_taken_back_cannot_store_its_result(database_url: str) -> None:
    database = Database(database_url)
    [job_id] = seed_jobs(database, 1)
    slow = queue.claim_next(database, "slow-worker", NOW)
    assert slow is not None
    queue.requeue_stale(database, NOW + timedelta(seconds=61), stale_after_s=60, max_runs=3)
    fresh = queue.claim_next(database, "fresh-worker", NOW + timedelta(seconds=62))
    assert fresh is not None
    outcome = JobOutcome(JobState.FAILED, None, "from the slow worker", charged=True)
    assert queue.finish(database, slow, outcome, NOW + timedelta(seconds=63)) is False
    assert queue.heartbeat(database, [slow], NOW + timedelta(seconds=63)) is None
    assert queue.finish(database, fresh, JobOutcome(JobState.DONE, None, None, charged=True), NOW) is True
    assert queue.finish(database, fresh, JobOutcome(JobState.DONE, None, None, charged=True), NOW) is False  # only once
    with database.read() as session:
        job = session.get_one(Job, job_id)
        assert (job.state, job.claimed_by, job.last_error) == ("done", "fresh-worker", None)
        assert session.scalars(select(Result)).all() == []
    database.dispose()


def test_a_released_job_goes_back_to_the_queue_and_its_run_does_not_count(database_url: str) -> None:
    database = Database(database_url)
    [job_id] = seed_jobs(database, 1)
    claimed = queue.claim_next(database, "stopping-worker", NOW)
    assert claimed is not None and queue.release(database, claimed, NOW)
    with database.read() as session:
        job = session.get_one(Job, job_id)
        assert (job.state, job.runs, job.claimed_by) == ("queued", 0, None)
    database.dispose()


def test_the_file_store_keeps_one_copy_per_content_and_never_leaves_its_folder(tmp_path: Path) -> None:
    store = FileUploadStore(tmp_path / "uploads")
    digest = "ab" + "0" * 62
    for number in range(2):
        staged = tmp_path / f"staged{number}"
        staged.write_bytes(b"same bytes")
        assert store.put(staged, digest) == digest
        assert not staged.exists()
    assert store.count() == 1 and store.exists(digest)
    with store.local_path(digest) as path:
        assert path == tmp_path / "uploads" / "ab" / digest and path.read_bytes() == b"same bytes"
    for bad_key in ("../../etc/passwd", "AB" + "0" * 62, ""):
        try:
            store.exists(bad_key)
        except ValueError:
            continue
        raise AssertionError(f"{bad_key!r} was accepted as a key")
