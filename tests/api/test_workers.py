"""The grading workers: concurrency, a dead worker's job taken back and graded once, shutdown that
puts unfinished jobs back, and a challenge that changed under a queued submission."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from api.jobs import queue
from api.models import AuditEvent, Job

if TYPE_CHECKING:
    from conftest import Api, ApiFactory


def jobs(api: Api) -> list[tuple[str, int]]:
    with api.service.db.read() as session:
        return [(job.state, job.runs) for job in session.scalars(select(Job).order_by(Job.id))]


def wait_until(condition: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_jobs_setting_grades_that_many_at_once(api_factory: ApiFactory) -> None:
    api = api_factory(jobs=2)
    candidate = api.team().invite(max_attempts=3)
    for number in range(3):
        candidate.upload(f"BLOCK pass:all {number}")
    wait_until(lambda: [state for state, _ in jobs(api)] == ["running", "running", "queued"])
    api.grader.release()
    api.wait_for_jobs()
    assert jobs(api) == [("done", 1)] * 3


def test_a_job_whose_worker_died_is_taken_back_and_graded_once(api_factory: ApiFactory) -> None:
    first = api_factory(workers=False)
    candidate = first.team().invite()
    candidate.upload("pass:all")
    dead = queue.claim_next(first.service.db, "a-service-that-was-killed", first.clock())
    assert dead is not None  # it claimed the job and died without a heartbeat
    first.clock.advance(seconds=10)  # more than stale_after_s (2 s)
    second = api_factory(clock=first.clock)  # a restarted service on the same database
    second.wait_for_jobs()
    assert jobs(second) == [("done", 2)]
    assert second.grader.calls == ["solution.py"]
    with second.service.db.read() as session:
        actions = [event.action for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-2:] == ["job.requeued", "job.done"]
    [view] = candidate.get("/submissions").json()
    assert (view["state"], view["feedback"]["status"]) == ("done", "graded")


def test_stopping_the_service_puts_its_unfinished_jobs_back_in_the_queue(api_factory: ApiFactory) -> None:
    api = api_factory()
    candidate = api.team().invite()
    candidate.upload("BLOCK pass:all")
    assert api.grader.started.wait(10)
    api.client.__exit__(None, None, None)  # shutdown: the lifespan stops the workers
    assert jobs(api) == [("queued", 0)]  # the run cut short does not count
    again = api_factory(clock=api.clock)
    again.grader.release()  # this time the grading runs to its end
    again.wait_for_jobs()
    assert jobs(again) == [("done", 1)]


def test_a_challenge_that_changed_after_the_upload_is_not_gradable_and_not_charged(api_factory: ApiFactory) -> None:
    api = api_factory(workers=False)
    candidate = api.team().invite(max_attempts=1)
    candidate.upload("pass:all")
    toml = api.service.settings.challenges_dir / "tiny" / "challenge.toml"  # type: ignore[operator]
    toml.write_text(toml.read_text().replace('version = "1.0.0"', 'version = "1.1.0"'))
    running = api_factory(clock=api.clock)
    running.wait_for_jobs()
    [view] = candidate.get("/submissions").json()
    assert (view["state"], view["charged"], view["attempts_left"]) == ("not_gradable", False, 1)
    with running.service.db.read() as session:
        assert "is now version 1.1.0" in (session.scalars(select(Job.last_error)).one() or "")
    refused = candidate.upload("pass:all")
    assert refused.status_code == 409 and "ask the hiring team for a new invitation" in refused.json()["error"]


def test_an_inconclusive_timing_goes_back_to_the_queue_uncharged_then_is_graded(api_factory: ApiFactory) -> None:
    api = api_factory()
    team = api.team()
    candidate = team.invite(max_attempts=1)
    candidate.upload("pass:all INCONCLUSIVE:1")
    wait_until(lambda: jobs(api) == [("queued", 1)])
    [view] = candidate.get("/submissions").json()
    assert view["state"] == "queued"
    team_view = team.get("/challenges/tiny/submissions").json()
    assert team_view[0]["note"].startswith("retrying: the machine was too busy to time it (try 1 of 3)")
    time.sleep(2 * api.service.settings.poll_s)
    assert jobs(api) == [("queued", 1)], "a retry must wait: the machine was busy a moment ago"
    api.clock.advance(seconds=queue.TIMING_RETRY_DELAYS_S[0] + 1)
    api.wait_for_jobs()
    assert jobs(api) == [("done", 2)]
    assert api.grader.calls == ["solution.py", "solution.py"]
    with api.service.db.read() as session:
        actions = [event.action for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "job.retry_later" in actions and actions[-1] == "job.done"


def test_a_timing_that_stays_inconclusive_is_not_gradable_and_not_charged(api_factory: ApiFactory) -> None:
    api = api_factory()
    candidate = api.team().invite(max_attempts=1)
    candidate.upload("pass:all INCONCLUSIVE:99")
    for run, delay_s in enumerate(queue.TIMING_RETRY_DELAYS_S, start=1):
        wait_until(lambda run=run: jobs(api) == [("queued", run)])  # type: ignore[misc]
        api.clock.advance(seconds=delay_s + 1)
    api.wait_for_jobs()
    assert jobs(api) == [("not_gradable", len(queue.TIMING_RETRY_DELAYS_S) + 1)]
    [view] = candidate.get("/submissions").json()
    assert (view["state"], view["charged"], view["attempts_left"]) == ("not_gradable", False, 1)
