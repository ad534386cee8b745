"""In-process grading workers: threads that claim jobs from the database and grade them.

``WorkerPool`` runs ``settings.jobs`` worker threads and one keeper thread. A
worker claims a job (``api.queue``), grades the stored file with the grader
(``grader.grading.grade_submission`` by default, in the sandbox backend the
settings name) and stores the outcome. The keeper sends heartbeats for the
running jobs and takes back jobs whose worker died (another service that was
killed, or this one before a restart).

Outcomes: a graded result is ``done``; a result with status ``error`` (our
infrastructure failed) or a challenge that is gone or changed is
``not_gradable`` and not charged to the candidate; a submission the grader
refuses is ``failed`` and charged (uploads are checked first, so this is rare).

On ``stop`` the workers stop their judges and put their jobs back in the
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api import queue
from api.backend_check import plain_problem
from api.errors import NotFound
from api.logs import grading_event
from api.queue import ClaimedJob, JobOutcome
from api.service import Service
from grader.challenge import Challenge
from grader.errors import BadSubmission, CvgradeError, InfrastructureError
from grader.grading import GradeOptions, grade_submission, stop_all_judges
from grader.results import GradeResult

log = logging.getLogger("cvgrade.api.workers")
GradeFunction = Callable[[Path, Challenge, GradeOptions], GradeResult]


class WorkerPool:
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
        self._running: dict[str, ClaimedJob] = {}  # worker name -> its job
        self._lock = threading.Lock()

    @property
    def options(self) -> GradeOptions:
        settings = self.service.settings
        return GradeOptions(backend=settings.backend, isolation=settings.isolation)

    def start(self) -> None:
        """Take back jobs left by a dead service, then start the workers and the keeper."""
        self._take_back_stale()
        for number in range(self.service.settings.jobs):
            name = f"{self.instance}/worker-{number + 1}"
            self._threads.append(threading.Thread(target=self._work, args=(name,), name=name, daemon=True))
        self._threads.append(threading.Thread(target=self._keep, name=f"{self.instance}/keeper", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("%d grading worker(s) started (%s backend)", self.service.settings.jobs, self.options.backend)

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
        for job in self.running():  # a worker that did not stop in time: its job goes back anyway
            queue.release(self.service.db, job, self.service.clock())
        self._threads.clear()

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
            "ended" if outcome.state == "done" else "failed", logging.INFO if outcome.state == "done" else
            logging.WARNING, **fields, state=outcome.state, score=graded.score if graded else None,
            passed=graded.passed if graded else None, duration_s=round(time.monotonic() - started, 2),
            backend=chosen or self.options.backend, chosen_by="auto" if self.options.backend == "auto" else None,
            charged=outcome.charged, error=outcome.error)
        return outcome

    def _grade(self, job: ClaimedJob) -> JobOutcome:
        try:
            challenge = self.service.challenge(job.challenge_id)
            if challenge.version != job.challenge_version:
                return JobOutcome("not_gradable", None, (
                    f"the challenge {job.challenge_id} is now version {challenge.version}; this submission was "
                    f"made for version {job.challenge_version}"), charged=False)
            with tempfile.TemporaryDirectory(prefix="cvgrade-job-") as folder, \
                    self.service.store.local_path(job.store_key) as stored:
                submission = Path(folder) / job.filename
                submission.symlink_to(stored)  # the grader copies it into a fresh workspace
                result = self.grade(submission, challenge, self.options)
        except NotFound as err:
            return JobOutcome("not_gradable", None, err.message, charged=False)
        except BadSubmission as err:
            return JobOutcome("failed", None, str(err), charged=True)
        except InfrastructureError as err:  # the sandbox is gone: a plain sentence for the team, the rest logged
            log.error("job %s cannot be graded: %s", job.job_id, err)
            return JobOutcome("not_gradable", None, plain_problem(self.options.backend, str(err)), charged=False)
        except CvgradeError as err:
            return JobOutcome("not_gradable", None, str(err), charged=False)
        except Exception as err:
            log.exception("grading job %s failed", job.job_id)
            return JobOutcome("not_gradable", None, f"the service failed: {type(err).__name__}: {err}", charged=False)
        if result.status == "error":
            return JobOutcome("not_gradable", result, result.error, charged=False)
        return JobOutcome("done", result, None, charged=True)

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
