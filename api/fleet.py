"""Grading on many hosts: a Celery app, the grading task, and what each worker can run.

The service hands a job to the broker (Redis by default; RabbitMQ by URL); a
``cvgrade worker`` on some host takes it from the queue of its hardware class,
grades it with that host's harness (Docker with GPUs, or local) and returns the
grader's result as JSON through the result backend. Nothing crosses as a
pickle: task arguments and results are JSON only, and the service validates a
result with the ``GradeResult`` model before it stores it.

Delivery is at least once (late acknowledgement; a worker killed mid-grading
gives its message back when the broker's visibility timeout ends), so the
service records results idempotently (``api.queue.finish``). A job whose
grading keeps killing its worker is counted per delivery in the broker and
stopped after ``MAX_DELIVERIES``.

Queues, one per hardware class: ``grade.cpu`` (challenges with ``gpu`` off or
optional) and ``grade.gpu`` (``gpu = "required"``). A CPU-only worker consumes
``grade.cpu`` only; a GPU worker consumes both, one grading per GPU.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery

from api.backend_check import plain_problem
from grader.challenge import Challenge, default_challenges_dir, load_challenge
from grader.errors import BadSubmission, CvgradeError, InfrastructureError
from grader.grading import GradeOptions, grade_submission
from harness.gpus import nvidia_gpus

log = logging.getLogger("cvgrade.fleet")

TASK_NAME = "cvgrade.grade_job"
QUEUE_CPU = "grade.cpu"
QUEUE_GPU = "grade.gpu"
QUEUES = (QUEUE_CPU, QUEUE_GPU)
MAX_DELIVERIES = 3
WORKER_KEY_PREFIX = "cvgrade:worker:"  # one key per live worker: its hardware, refreshed while it runs
WORKER_TTL_S = 30
DONE_KEY = "cvgrade:done"  # a sorted set of finished gradings, scored by time: recent throughput
# A message not acknowledged this long is given to another worker: longer than the longest grading.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600


def queue_for(challenge: Challenge) -> str:
    """GPU-required challenges go to GPU workers; everything else to any worker."""
    return QUEUE_GPU if challenge.spec.limits.gpu == "required" else QUEUE_CPU


def _redis_transport_options(visibility_timeout_s: float) -> dict[str, float]:
    """Kombu's Redis options: a dead worker's job goes back to the queue soon after the timeout.

    Kombu looks for messages whose visibility timeout has passed every
    ``unacked_restore_interval`` seconds but scans Redis only on every
    ``unacked_restore_throttle``-th look (defaults 10 and 10): a job could wait
    100 s past its timeout. We scan on every look, every quarter of the timeout
    (1 to 10 s): one small Redis query per worker and look.
    """
    return {"visibility_timeout": visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, round(visibility_timeout_s / 4))),
            "unacked_restore_throttle": 1}


def make_celery(broker_url: str, *, result_backend: str | None = None,
                visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S) -> Celery:
    """The Celery app both the service and the workers use; JSON only, late acknowledgement."""
    app = Celery("cvgrade", broker=broker_url, backend=result_backend or broker_url)
    app.conf.update(
        task_serializer="json", result_serializer="json",
        accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_default_queue=QUEUE_CPU, task_track_started=True, result_expires=7 * 24 * 3600,
        broker_transport_options=_redis_transport_options(visibility_timeout_s),
        result_backend_transport_options=_redis_transport_options(visibility_timeout_s),
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.task(name=TASK_NAME, bind=True)(_grade_job)
    return app


def job_payload(*, job_id: int, run: int, challenge: Challenge, filename: str, content: bytes) -> dict[str, Any]:
    """What a worker needs to grade one job: plain JSON, the submission's bytes in base64."""
    return {
        "job_id": job_id, "run": run, "challenge_id": challenge.id, "challenge_version": challenge.version,
        "filename": filename, "sha256": hashlib.sha256(content).hexdigest(),
        "content_b64": base64.b64encode(content).decode("ascii"),
    }


def task_id(job_id: int, run: int) -> str:
    return f"cvgrade-job-{job_id}-run-{run}"


# ---------------------------------------------------------------------------- the worker side


def _grade_job(task: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Grade one job on this host. Returns {"state", "result", "error", "charged", "worker"}."""
    worker = str(task.request.hostname or socket.gethostname())
    deliveries = _count_delivery(task.app, payload)
    if deliveries > MAX_DELIVERIES:
        return _outcome("failed", None, (
            f"stopped after {MAX_DELIVERIES} tries: its worker died each time it graded this submission"
        ), charged=False, worker=worker)  # we could not grade it: it does not cost an attempt
    try:
        content = base64.b64decode(payload["content_b64"], validate=True)
        if hashlib.sha256(content).hexdigest() != payload["sha256"]:
            return _outcome("not_gradable", None, "the submission was damaged on its way to the worker",
                            charged=False, worker=worker)
        challenge = _challenge(payload["challenge_id"])
        if challenge.version != payload["challenge_version"]:
            return _outcome("not_gradable", None, (
                f"worker {worker} has {challenge.id} version {challenge.version}, the job wants "
                f"{payload['challenge_version']}"), charged=False, worker=worker)
        with tempfile.TemporaryDirectory(prefix="cvgrade-fleet-") as folder:
            submission = Path(folder) / Path(payload["filename"]).name
            submission.write_bytes(content)
            result = grade_submission(submission, challenge, _options())
    except BadSubmission as err:
        return _outcome("failed", None, str(err), charged=True, worker=worker)
    except InfrastructureError as err:  # this host's sandbox is gone: a plain sentence, the detail in its log
        log.error("job %s cannot be graded on %s: %s", payload.get("job_id"), worker, err)
        return _outcome("not_gradable", None, plain_problem(_options().backend, str(err)), charged=False,
                        worker=worker)
    except CvgradeError as err:
        return _outcome("not_gradable", None, str(err), charged=False, worker=worker)
    _mark_done(task.app, worker)
    if result.status == "error":
        return _outcome("not_gradable", result.model_dump(mode="json"), result.error, charged=False, worker=worker)
    return _outcome("done", result.model_dump(mode="json"), None, charged=True, worker=worker)


def _outcome(state: str, result: dict[str, Any] | None, error: str | None, *, charged: bool,
             worker: str) -> dict[str, Any]:
    return {"state": state, "result": result, "error": error, "charged": charged, "worker": worker}


def _challenge(challenge_id: str) -> Challenge:
    base = Path(os.environ["CVGRADE_CHALLENGES_DIR"]) if os.environ.get("CVGRADE_CHALLENGES_DIR") \
        else default_challenges_dir()
    if "/" in challenge_id or challenge_id.startswith("."):
        raise CvgradeError(f"not a challenge id: {challenge_id!r}")
    return load_challenge(base / challenge_id)


def _options() -> GradeOptions:
    return GradeOptions(backend=os.environ.get("CVGRADE_BACKEND", "auto"),  # type: ignore[arg-type]
                        isolation=os.environ.get("CVGRADE_ISOLATION", "auto"))  # type: ignore[arg-type]


def _redis(app: Celery) -> Any | None:
    """The result backend's Redis client, where the backend is Redis (delivery counts, fleet view)."""
    client = getattr(app.backend, "client", None)
    return client if client is not None and hasattr(client, "incr") else None


def _count_delivery(app: Celery, payload: dict[str, Any]) -> int:
    client = _redis(app)
    if client is None:
        return 1
    key = f"cvgrade:deliveries:{payload['job_id']}:{payload['run']}"
    count = int(client.incr(key))
    client.expire(key, 7 * 24 * 3600)
    return count


def _mark_done(app: Celery, worker: str) -> None:
    client = _redis(app)
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
    """Keep this worker's hardware in the broker's Redis while it runs (``cvgrade fleet`` reads it)."""
    while not stop.is_set():
        client = _redis(app)
        if client is not None:
            try:
                client.set(WORKER_KEY_PREFIX + name, json.dumps({**facts, "seen": time.time()}), ex=WORKER_TTL_S)
            except Exception as err:  # the broker restarting: try again at the next beat
                log.warning("could not advertise this worker: %s", err)
        stop.wait(WORKER_TTL_S / 3)


def run_worker(broker_url: str, *, concurrency: int | None = None, name: str | None = None,
               visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S) -> None:
    """Start a grading worker in this process until SIGTERM (warm shutdown: the running gradings finish)."""
    facts = hardware()
    slots = concurrency or max(1, facts["gpus"])
    node = name or f"cvgrade-{facts['hardware_class']}@{socket.gethostname()}-{os.getpid()}"
    app = make_celery(broker_url, visibility_timeout_s=visibility_timeout_s)
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
        client = _redis(app)
        if client is not None:
            try:
                client.delete(WORKER_KEY_PREFIX + node)
            except Exception:
                log.debug("could not withdraw %s from the broker", node)


def fleet_view(app: Celery) -> dict[str, Any]:
    """Workers and their hardware, queue depth per hardware class, gradings finished lately."""
    client = _redis(app)
    if client is None:
        raise CvgradeError("the fleet view needs a Redis result backend")
    workers = []
    for key in sorted(client.scan_iter(match=WORKER_KEY_PREFIX + "*")):
        raw = client.get(key)
        if raw:
            name = (key.decode() if isinstance(key, bytes) else str(key))[len(WORKER_KEY_PREFIX):]
            workers.append({"name": name, **json.loads(raw)})
    broker = app.connection_for_read()
    depth: dict[str, int] = {}
    try:
        channel = broker.default_channel
        for queue in QUEUES:
            try:
                depth[queue] = int(channel.client.llen(queue))
            except Exception:
                depth[queue] = -1
    finally:
        broker.release()
    now = time.time()
    return {
        "workers": workers,
        "queue_depth": depth,
        "finished_last_minute": int(client.zcount(DONE_KEY, now - 60, now)),
        "finished_last_hour": int(client.zcount(DONE_KEY, now - 3600, now)),
    }
