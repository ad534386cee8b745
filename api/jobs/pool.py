"""The in-process runner: grading threads in the service that claim jobs from the database.

``GradingPool`` runs ``settings.jobs`` grading threads and one keeper thread. A
grading thread claims a job (``api.jobs.queue``), grades the stored file with
``api.jobs.policy.grade_job`` (which calls ``grader.grading.grade_submission`` by
default, in the sandbox backend the settings name) and stores the outcome. The
keeper sends heartbeats for the running jobs and takes back jobs whose holder
died (another service that was killed, or this one before a restart).

What a grading comes to (done, failed and charged, not gradable and not charged)
is ``grade_job``'s rule, the same as on the fleet.

On ``stop`` the threads stop their judges and put their jobs back in the
queue: a grading cut short must not be stored as the candidate's result.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.jobs import queue
from api.jobs.policy import GradeFunction, grade_job
from api.jobs.queue import ClaimedJob, JobOutcome
from api.jobs.state import JobState
from api.logs import grading_event
from api.service import Service
from grader import standby
from grader.grading import GradeOptions, grade_submission
from grader.judge_process import stop_all_judges

log = logging.getLogger("cvgrade.api.jobs.pool")


class GradingPool:
    """``grade`` grades one submission (default: the grader's); ``stop_gradings`` makes the gradings
    in progress return early (default: stop this process's judges)."""

    def __init__(
        self, service: Service, *, grade: GradeFunction | None = None, stop_gradings: Callable[[], None] | None = None
    ) -> None:
        self.service = service
        self.grade = grade or grade_submission
        self.stop_gradings = stop_gradings or (stop_all_judges if grade is None else _nothing)
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, ClaimedJob] = {}  # grading thread's name -> its job
        self._lock = threading.Lock()

    @property
    def options(self) -> GradeOptions:
        settings = self.service.settings
        return GradeOptions(backend=settings.backend, isolation=settings.isolation)

    def start(self) -> None:
        """Take back jobs left by a dead service, then start the grading threads and the keeper."""
        self._take_back_stale()
        for number in range(self.service.settings.jobs):
            name = f"{self.instance}/grader-{number + 1}"
            self._threads.append(threading.Thread(target=self._work, args=(name,), name=name, daemon=True))
        self._threads.append(threading.Thread(target=self._keep, name=f"{self.instance}/keeper", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("%d grading thread(s) started (%s backend)", self.service.settings.jobs, self.options.backend)

    def notify(self) -> None:
        self._wake.set()

    def running(self) -> list[ClaimedJob]:
        with self._lock:
            return list(self._running.values())

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming, stop the gradings in progress and queue their jobs again."""
        self._stopping.set()
        self._wake.set()
        if self.running():
            self.stop_gradings()  # they return a result cut short, which is not stored
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        for job in self.running():  # a thread that did not stop in time: its job goes back anyway
            queue.release(self.service.db, job, self.service.clock())
        self._threads.clear()
        standby.discard_all()  # the workers started for a next job that will not come here

    def _work(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                job = queue.claim_next(self.service.db, name, self.service.clock())
            except Exception:
                log.exception("claiming a job failed; trying again shortly")
                job = None
            if job is None:
                self._wake.wait(self.service.settings.poll_s)
                self._wake.clear()
                continue
            with self._lock:
                self._running[name] = job
            try:
                outcome = self._graded(job)
                if self._stopping.is_set():
                    queue.release(self.service.db, job, self.service.clock())
                else:
                    queue.finish(self.service.db, job, outcome, self.service.clock())
            except Exception:
                log.exception("storing the outcome of job %s failed; the keeper will queue it again", job.job_id)
            finally:
                with self._lock:
                    self._running.pop(name, None)

    def _graded(self, job: ClaimedJob) -> JobOutcome:
        """Grade, with one structured log line when it starts and one when it ends (``api.logs``)."""
        fields: dict[str, Any] = {"job": job.job_id, "submission": job.submission_id, "challenge": job.challenge_id,
                  "run": job.run, "worker": job.worker}
        grading_event("started", **fields, backend=self.options.backend)
        started = time.monotonic()
        outcome = self._grade(job)
        graded = outcome.result
        sandbox = graded.environment.get("sandbox", {}) if graded is not None else {}
        chosen = sandbox.get("backend") if isinstance(sandbox, dict) else None
        grading_event(
            "ended" if outcome.state == JobState.DONE else "failed", logging.INFO if outcome.state == JobState.DONE else
            logging.WARNING, **fields, state=outcome.state, score=graded.score if graded else None,
            passed=graded.passed if graded else None, duration_s=round(time.monotonic() - started, 2),
            backend=chosen or self.options.backend, chosen_by="auto" if self.options.backend == "auto" else None,
            charged=outcome.charged, error=outcome.error)
        return outcome

    def _grade(self, job: ClaimedJob) -> JobOutcome:
        return grade_job(job_id=job.job_id, challenge_version=job.challenge_version,
                         challenge=lambda: self.service.challenge(job.challenge_id),
                         submission=lambda: self._stored_submission(job), grade=self.grade, options=self.options)

    @contextmanager
    def _stored_submission(self, job: ClaimedJob) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="cvgrade-job-") as folder, \
                self.service.store.local_path(job.store_key) as stored:
            submission = Path(folder) / job.filename
            submission.symlink_to(stored)  # the grader copies it into a fresh workspace
            yield submission

    def _keep(self) -> None:
        settings = self.service.settings
        while not self._stopping.wait(settings.heartbeat_s):
            try:
                queue.heartbeat(self.service.db, self.running(), self.service.clock())
            except Exception:
                log.exception("sending heartbeats failed")
            self._take_back_stale()

    def _take_back_stale(self) -> None:
        settings = self.service.settings
        try:
            if queue.requeue_stale(self.service.db, self.service.clock(),
                                   stale_after_s=settings.stale_after_s, max_runs=settings.max_job_runs):
                self._wake.set()
        except Exception:
            log.exception("taking back stale jobs failed")


def _nothing() -> None:
    return None
