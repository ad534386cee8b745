"""A fleet grader: the process ``cvgrade worker`` runs on each grading host, and its one Celery task.

It takes jobs from the broker's queues its hardware can run (``api.jobs.broker``),
grades each with this host's sandbox through ``api.jobs.policy.grade_job`` (the
same rule as the service's own pool) and answers with a ``GradeJobReply``
(``api.jobs.messages``). Its settings come from the command (``resolve_settings``),
never from environment variables set on the way.

Before grading, the task counts the delivery (a job that killed its grader
``MAX_DELIVERIES`` times is given up, uncharged) and checks the submission's hash.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from celery import Celery

from api.config import SettingsError
from api.jobs.broker import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    DONE_KEY,
    MAX_DELIVERIES,
    QUEUE_CPU,
    QUEUE_GPU,
    TASK_NAME,
    WORKER_KEY_PREFIX,
    WORKER_TTL_S,
    make_celery,
    redis_client,
)
from api.jobs.messages import GradeJobPayload, GradeJobReply
from api.jobs.policy import GradeFunction, grade_job
from api.jobs.queue import JobOutcome
from api.jobs.state import JobState
from grader.challenge import Challenge, default_challenges_dir, load_challenge
from grader.errors import CvgradeError
from grader.grading import GradeOptions, grade_submission
from harness.gpus import nvidia_gpus

log = logging.getLogger("cvgrade.api.jobs.fleet_grader")


@dataclass(frozen=True)
class FleetGraderSettings:
    """How this host grades: its sandbox and where its challenges are."""

    backend: Literal["auto", "docker", "local"] = "auto"
    isolation: Literal["auto", "bwrap", "process"] = "auto"
    challenges_dir: Path | None = None  # None: the challenges/ folder beside the packages

    @property
    def options(self) -> GradeOptions:
        return GradeOptions(backend=self.backend, isolation=self.isolation)


def resolve_settings(*, backend: str | None = None, isolation: str | None = None,
                     challenges_dir: Path | None = None,
                     env: Mapping[str, str] | None = None) -> FleetGraderSettings:
    """Settings from the flags given (None: not given), then ``CVGRADE_BACKEND``, ``CVGRADE_ISOLATION``,
    ``CVGRADE_CHALLENGES_DIR``, then defaults."""
    env = os.environ if env is None else env
    chosen_backend = backend or env.get("CVGRADE_BACKEND") or "auto"
    if chosen_backend not in ("auto", "docker", "local"):
        raise SettingsError(f"the sandbox backend must be auto, docker or local, not {chosen_backend!r}")
    chosen_isolation = isolation or env.get("CVGRADE_ISOLATION") or "auto"
    if chosen_isolation not in ("auto", "bwrap", "process"):
        raise SettingsError(f"the isolation must be auto, bwrap or process, not {chosen_isolation!r}")
    configured_dir = env.get("CVGRADE_CHALLENGES_DIR")
    return FleetGraderSettings(
        backend=cast(Literal["auto", "docker", "local"], chosen_backend),
        isolation=cast(Literal["auto", "bwrap", "process"], chosen_isolation),
        challenges_dir=challenges_dir or (Path(configured_dir) if configured_dir else None),
    )


def register_task(app: Celery, settings: FleetGraderSettings, *, grade: GradeFunction = grade_submission) -> None:
    """Register the grading task on ``app``, grading with ``settings``."""

    def grade_one(task: Any, raw: dict[str, Any]) -> dict[str, Any]:
        worker = str(task.request.hostname or socket.gethostname())
        reply = grade_payload(GradeJobPayload.model_validate(raw), settings, worker=worker, app=app, grade=grade)
        return reply.model_dump(mode="json")

    app.task(name=TASK_NAME, bind=True)(grade_one)


def grade_payload(payload: GradeJobPayload, settings: FleetGraderSettings, *, worker: str, app: Celery | None = None,
                  grade: GradeFunction = grade_submission) -> GradeJobReply:
    """Grade one job on this host (``app``: the broker's Redis, for delivery counts and throughput)."""
    if _count_delivery(app, payload) > MAX_DELIVERIES:
        return GradeJobReply.of(JobOutcome(JobState.FAILED, None, (
            f"stopped after {MAX_DELIVERIES} tries: its worker died each time it graded this submission"
        ), charged=False), worker=worker)  # we could not grade it: it does not cost an attempt
    content = payload.content()
    if content is None:
        return GradeJobReply.of(JobOutcome(JobState.NOT_GRADABLE, None, (
            "the submission was damaged on its way to the worker"), charged=False), worker=worker)

    @contextmanager
    def submission() -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="cvgrade-fleet-") as folder:
            path = Path(folder) / Path(payload.filename).name
            path.write_bytes(content)
            yield path

    outcome = grade_job(job_id=payload.job_id, challenge_version=payload.challenge_version,
                        challenge=lambda: _challenge(settings, payload.challenge_id), submission=submission,
                        grade=grade, options=settings.options, where=f" on worker {worker}")
    if outcome.result is not None:
        _mark_done(app, worker)
    return GradeJobReply.of(outcome, worker=worker)


def _challenge(settings: FleetGraderSettings, challenge_id: str) -> Challenge:
    base = settings.challenges_dir or default_challenges_dir()
    if "/" in challenge_id or challenge_id.startswith("."):
        raise CvgradeError(f"not a challenge id: {challenge_id!r}")
    return load_challenge(base / challenge_id)


def _count_delivery(app: Celery | None, payload: GradeJobPayload) -> int:
    client = redis_client(app) if app is not None else None
    if client is None:
        return 1
    key = f"cvgrade:deliveries:{payload.job_id}:{payload.run}"
    count = int(client.incr(key))
    client.expire(key, 7 * 24 * 3600)
    return count


def _mark_done(app: Celery | None, worker: str) -> None:
    client = redis_client(app) if app is not None else None
    if client is not None:
        now = time.time()
        client.zadd(DONE_KEY, {f"{worker}:{now:.6f}": now})
        client.zremrangebyscore(DONE_KEY, 0, now - 24 * 3600)


def hardware() -> dict[str, Any]:
    """What this host can grade: its GPUs (from nvidia-smi) and CPUs."""
    names = [gpu.describe() for gpu in nvidia_gpus()]
    gpus = len(names)
    return {"gpus": gpus, "gpu_names": names, "cpus": os.cpu_count() or 1,
            "hardware_class": "gpu" if gpus else "cpu",
            "queues": [QUEUE_CPU, QUEUE_GPU] if gpus else [QUEUE_CPU]}


def _advertise(app: Celery, name: str, facts: dict[str, Any], stop: threading.Event) -> None:
    """Keep this grader's hardware in the broker's Redis while it runs (``cvgrade fleet`` reads it)."""
    while not stop.is_set():
        client = redis_client(app)
        if client is not None:
            try:
                client.set(WORKER_KEY_PREFIX + name, json.dumps({**facts, "seen": time.time()}), ex=WORKER_TTL_S)
            except Exception as err:  # the broker restarting: try again at the next beat
                log.warning("could not advertise this worker: %s", err)
        stop.wait(WORKER_TTL_S / 3)


def run_fleet_grader(broker_url: str, settings: FleetGraderSettings, *, concurrency: int | None = None,
                     name: str | None = None, visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S) -> None:
    """Grade jobs from the broker in this process until SIGTERM (warm shutdown: the running gradings finish)."""
    facts = hardware()
    slots = concurrency or max(1, facts["gpus"])
    node = name or f"cvgrade-{facts['hardware_class']}@{socket.gethostname()}-{os.getpid()}"
    app = make_celery(broker_url, visibility_timeout_s=visibility_timeout_s)
    register_task(app, settings)
    stop = threading.Event()
    beat = threading.Thread(target=_advertise, args=(app, node, {**facts, "concurrency": slots}, stop), daemon=True)
    beat.start()
    try:
        app.worker_main([
            "worker", "--hostname", node, "--queues", ",".join(facts["queues"]),
            "--concurrency", str(slots), "--pool", "threads", "--loglevel", "INFO", "--without-mingle",
            "--without-gossip",
        ])
    finally:
        stop.set()
        client = redis_client(app)
        if client is not None:
            try:
                client.delete(WORKER_KEY_PREFIX + node)
            except Exception:
                log.debug("could not withdraw %s from the broker", node)
