"""The service's side of the fleet: send queued jobs to the broker, record what comes back.

Used instead of the in-process ``GradingPool`` when the service has a broker
(``--broker`` / ``CVGRADE_BROKER_URL``). Jobs still live in the database: the
dispatcher claims a job there (so no job is sent twice), sends it to the queue
of its hardware class with a task id made of the job and its run, keeps its
heartbeat while the fleet holds it, and stores the worker's result through
``api.jobs.queue.finish``, which refuses anything but the first result of the run
the job is on. A restarted service adopts the jobs it had sent (by their task
ids) instead of grading them again.

A job no connected fleet grader can run (a GPU challenge with only CPU graders) stays
claimed with a note saying what it waits for, and after
``no_worker_timeout_s`` is failed with that reason, not charged.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from celery import Celery
from celery.result import AsyncResult
from pydantic import ValidationError
from sqlalchemy import select, update

from api.errors import NotFound
from api.jobs import queue
from api.jobs.broker import QUEUE_GPU, TASK_NAME, capable_queues, queue_for, task_id
from api.jobs.messages import GradeJobPayload, GradeJobReply
from api.jobs.queue import ClaimedJob, JobOutcome
from api.jobs.state import JobState
from api.models import Job
from api.service import Service

log = logging.getLogger("cvgrade.api.jobs.dispatcher")
FLEET_PREFIX = "fleet:"


@dataclass
class InFlight:
    job: ClaimedJob
    queue: str
    sent: bool
    since: float  # monotonic time of the claim


class CeleryDispatcher:
    """A ``JobRunner`` (like ``GradingPool``) whose gradings are done by the fleet."""

    def __init__(self, service: Service, app: Celery, *, no_worker_timeout_s: float = 600.0) -> None:
        self.service = service
        self.app = app
        self.no_worker_timeout_s = no_worker_timeout_s
        self.name = f"{FLEET_PREFIX}dispatcher"  # one per database: a restarted service adopts its jobs
        self._flights: dict[int, InFlight] = {}
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._capable: tuple[float, set[str]] = (0.0, set())

    def start(self) -> None:
        self._adopt()
        self._thread = threading.Thread(target=self._loop, name="fleet-dispatcher", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def running(self) -> list[ClaimedJob]:
        return [flight.job for flight in list(self._flights.values())]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop dispatching. Jobs in the fleet stay there: a restarted service adopts them."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._dispatch()
                self._collect()
                queue.heartbeat(self.service.db, self.running(), self.service.clock())
            except Exception:
                log.exception("the fleet dispatcher hit an error; going on")
            self._wake.wait(self.service.settings.poll_s)
            self._wake.clear()

    def _adopt(self) -> None:
        """Jobs this service sent before it stopped: follow them again by task id."""
        with self.service.db.read() as session:
            jobs = session.scalars(select(Job).where(Job.state == JobState.RUNNING, Job.claimed_by == self.name)).all()
            for job in jobs:
                submission = job.submission
                claimed = ClaimedJob(
                    job_id=job.id, run=job.runs, worker=self.name, submission_id=submission.id,
                    team_id=submission.team_id, challenge_id=submission.challenge_id,
                    challenge_version=submission.challenge_version, store_key=submission.store_key,
                    filename=submission.filename,
                )
                self._flights[job.id] = InFlight(claimed, queue="", sent=True, since=time.monotonic())
        if self._flights:
            log.info("adopted %d job(s) already in the fleet", len(self._flights))

    def _dispatch(self) -> None:
        for flight in [f for f in self._flights.values() if not f.sent]:
            self._send(flight)  # the broker was down when it was claimed
        while not self._stopping.is_set():
            job = queue.claim_next(self.service.db, self.name, self.service.clock())
            if job is None:
                return
            flight = InFlight(job, queue="", sent=False, since=time.monotonic())
            self._flights[job.job_id] = flight
            self._send(flight)

    def _send(self, flight: InFlight) -> None:
        job = flight.job
        try:
            challenge = self.service.challenge(job.challenge_id)
        except NotFound as err:
            self._finish(flight, JobOutcome(JobState.NOT_GRADABLE, None, err.message, charged=False))
            return
        with self.service.store.local_path(job.store_key) as stored:
            content = stored.read_bytes()
        payload = GradeJobPayload.for_job(job_id=job.job_id, run=job.run, challenge=challenge,
                                          filename=job.filename, content=content)
        flight.queue = queue_for(challenge)
        try:
            self.app.send_task(TASK_NAME, args=[payload.model_dump(mode="json")], queue=flight.queue,
                               task_id=task_id(job.job_id, job.run),
                               retry=True, retry_policy={"max_retries": 3, "interval_start": 0.5})
        except Exception as err:
            log.warning("could not send job %s to the broker (%s); trying again shortly", job.job_id, err)
            return
        flight.sent = True

    def _collect(self) -> None:
        for flight in [f for f in self._flights.values() if f.sent]:
            job = flight.job
            result = AsyncResult(task_id(job.job_id, job.run), app=self.app)
            try:
                state = result.state
                if state == "SUCCESS":
                    self._finish(flight, self._outcome(result.get(timeout=10, propagate=False)))
                elif state == "FAILURE":
                    self._finish(flight, JobOutcome(JobState.NOT_GRADABLE, None,
                                                    f"the worker failed: {str(result.result)[:500]}", charged=False))
                elif state == "PENDING":
                    self._wait_for_capable_worker(flight)
            except Exception as err:  # the broker restarting: ask again next time
                log.warning("could not read job %s from the broker: %s", job.job_id, err)

    @staticmethod
    def _outcome(raw: object) -> JobOutcome:
        """A fleet grader's JSON reply, validated: the fleet is trusted, but a bug there must not put garbage
        in the database."""
        try:
            return GradeJobReply.model_validate(raw).outcome()
        except ValidationError:
            return JobOutcome(JobState.NOT_GRADABLE, None, "the worker sent a malformed reply", charged=False)

    def _finish(self, flight: InFlight, outcome: JobOutcome) -> None:
        queue.finish(self.service.db, flight.job, outcome, self.service.clock())
        self._flights.pop(flight.job.job_id, None)
        AsyncResult(task_id(flight.job.job_id, flight.job.run), app=self.app).forget()

    def _wait_for_capable_worker(self, flight: InFlight) -> None:
        if flight.queue != QUEUE_GPU or QUEUE_GPU in self._capable_queues():
            return
        waited = time.monotonic() - flight.since
        if waited < self.no_worker_timeout_s:
            note(self.service, flight.job, "waiting for a worker with a GPU: none is connected to the broker")
            return
        self.app.control.revoke(task_id(flight.job.job_id, flight.job.run))
        self._finish(flight, JobOutcome(JobState.FAILED, None, (
            f"no capable worker: no worker with a GPU took this job within {self.no_worker_timeout_s:g} s"
        ), charged=False))

    def _capable_queues(self) -> set[str]:
        """Queues some live fleet grader consumes (``broker.capable_queues``, cached for 5 s)."""
        checked, queues = self._capable
        if time.monotonic() - checked < 5:
            return queues
        queues = capable_queues(self.app)
        self._capable = (time.monotonic(), queues)
        return queues


def note(service: Service, job: ClaimedJob, text: str) -> None:
    """Say what a job waits for (shown with its status) while it is still this run's."""
    with service.db.write() as session:
        session.execute(
            update(Job)
            .where(queue.still_held(job))
            .values(last_error=text)
        )
        session.commit()
