"""The broker between the service and its fleet graders: the Celery app, its queues, and the fleet view.

The service hands a job to the broker (Redis by default; RabbitMQ by URL); a
fleet grader (``cvgrade worker``, ``api.jobs.fleet_grader``) on some host takes
it from the queue of its hardware class and answers through the result backend.
Nothing crosses as a pickle: task arguments and results are JSON only
(``api.jobs.messages``).

Delivery is at least once (late acknowledgement; a grader killed mid-grading
gives its message back when the broker's visibility timeout ends), so the
service records results idempotently (``api.jobs.queue.finish``). A job whose
grading keeps killing its grader is counted per delivery in the broker and
stopped after ``MAX_DELIVERIES``.

Queues, one per hardware class: ``grade.cpu`` (challenges with ``gpu`` off or
optional) and ``grade.gpu`` (``gpu = "required"``). A CPU-only grader consumes
``grade.cpu`` only; a GPU grader consumes both, one grading per GPU.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import Celery

from grader.challenge import Challenge
from grader.errors import CvgradeError

TASK_NAME = "cvgrade.grade_job"
QUEUE_CPU = "grade.cpu"
QUEUE_GPU = "grade.gpu"
QUEUES = (QUEUE_CPU, QUEUE_GPU)
MAX_DELIVERIES = 3
WORKER_KEY_PREFIX = "cvgrade:worker:"  # one key per live fleet grader: its hardware, refreshed while it runs
WORKER_TTL_S = 30
DONE_KEY = "cvgrade:done"  # a sorted set of finished gradings, scored by time: recent throughput
# A message not acknowledged this long is given to another grader: longer than the longest grading.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600


def queue_for(challenge: Challenge) -> str:
    """GPU-required challenges go to GPU graders; everything else to any grader."""
    return QUEUE_GPU if challenge.spec.limits.gpu == "required" else QUEUE_CPU


def task_id(job_id: int, run: int) -> str:
    return f"cvgrade-job-{job_id}-run-{run}"


def _redis_transport_options(visibility_timeout_s: float) -> dict[str, float]:
    """Kombu's Redis options: a dead grader's job goes back to the queue soon after the timeout.

    Kombu looks for messages whose visibility timeout has passed every
    ``unacked_restore_interval`` seconds but scans Redis only on every
    ``unacked_restore_throttle``-th look (defaults 10 and 10): a job could wait
    100 s past its timeout. We scan on every look, every quarter of the timeout
    (1 to 10 s): one small Redis query per grader and look.
    """
    return {"visibility_timeout": visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, round(visibility_timeout_s / 4))),
            "unacked_restore_throttle": 1}


def make_celery(broker_url: str, *, result_backend: str | None = None,
                visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S) -> Celery:
    """The Celery app both the service and the fleet graders use; JSON only, late acknowledgement.

    The service only sends (``TASK_NAME`` by name); a fleet grader registers the task on its own app
    (``api.jobs.fleet_grader.register_task``) with its settings.
    """
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
    return app


def redis_client(app: Celery) -> Any | None:
    """The result backend's Redis client, where the backend is Redis (delivery counts, fleet view)."""
    client = getattr(app.backend, "client", None)
    return client if client is not None and hasattr(client, "incr") else None


def capable_queues(app: Celery) -> set[str]:
    """Queues some live fleet grader consumes, from the graders' own adverts."""
    client = getattr(app.backend, "client", None)
    queues: set[str] = set()
    if client is not None:
        for key in client.scan_iter(match=WORKER_KEY_PREFIX + "*"):
            raw = client.get(key)
            if raw:
                queues.update(json.loads(raw).get("queues", []))
    return queues


def fleet_view(app: Celery) -> dict[str, Any]:
    """Fleet graders and their hardware, queue depth per hardware class, gradings finished lately."""
    client = redis_client(app)
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
