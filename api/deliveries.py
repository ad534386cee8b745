"""Sending webhook deliveries: a thread in the service that POSTs due events and retries with back-off.

A delivery is claimed in a write transaction (PostgreSQL: ``FOR UPDATE SKIP
LOCKED``; SQLite: the write lock) and leased to this sender until
``locked_until``, so several services sharing a database never send it at the
same time; a sender that dies leaves a lease that runs out, and the delivery is
sent again. Then it is POSTed outside any transaction, and the answer is
recorded as an attempt:

- a 2xx answer: ``delivered``;
- anything else (another status, a time-out, a refused connection, a redirect):
  sent again after ``webhook_backoff_s * 2**(attempts-1)`` (capped at an hour,
  plus up to 10% jitter), until ``webhook_max_attempts`` sends, then ``failed``.

Deliveries live in the database, so retries survive a restart. Delivery is at
least once: a receiver that answered but whose answer was lost gets the event
again, with the same ``X-Cvgrade-Delivery`` id to recognise it by.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select

from api.models import Webhook, WebhookAttempt, WebhookDelivery
from api.service import Service
from api.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    absolute_links,
    is_public_host,
    sign,
    webhook_secret,
)
from grader import __version__

log = logging.getLogger("cvgrade.api.webhooks")
MAX_BACKOFF_S = 3600.0
BATCH = 8


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    url: str
    salt: str
    event: str
    body: bytes


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """``start``, ``notify`` and ``stop`` like the grading workers; ``send_due`` does one round."""

    def __init__(self, service: Service, *, transport: httpx.BaseTransport | None = None) -> None:
        self.service = service
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}/webhooks"
        settings = service.settings
        self.client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False, transport=transport,
                                   headers={"User-Agent": f"cvgrade-webhooks/{__version__}"})
        self._pool = ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="webhook")
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = self.send_due()
            except Exception:
                log.exception("sending webhooks failed; trying again shortly")
                sent = 0
            if sent < BATCH:  # a full batch: there may be more due at once
                self._wake.wait(self.service.settings.poll_s)
                self._wake.clear()

    def send_due(self) -> int:
        """Claim up to ``BATCH`` due deliveries, send them at once, record each answer. Returns how many."""
        claimed = self._claim()
        for delivery, answer in zip(claimed, self._pool.map(self._post, claimed), strict=True):
            self._record(delivery, answer)
        return len(claimed)

    def _claim(self) -> list[Claimed]:
        settings, now = self.service.settings, self.service.clock()
        lease = timedelta(seconds=3 * settings.webhook_timeout_s + 30)
        with self.service.db.write() as session:
            due = session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now,
                       Webhook.deleted_at.is_(None),
                       or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(BATCH)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            ).all()
            claimed = []
            for delivery, webhook in due:
                delivery.locked_by, delivery.locked_until = self.name, now + lease
                payload = absolute_links(delivery.payload, settings.base_url())
                body = json.dumps({"delivery_id": delivery.id, **payload}, sort_keys=True,
                                  separators=(",", ":")).encode()
                claimed.append(Claimed(delivery.id, webhook.url, webhook.secret_salt, delivery.event, body))
            session.commit()
        return claimed

    def _post(self, delivery: Claimed) -> Answer:
        settings = self.service.settings
        started = time.perf_counter()
        host = urlsplit(delivery.url).hostname or ""
        if not settings.webhook_allow_private and not _resolves_to_public(host):
            return Answer(None, f"{host} resolves to a loopback or private address, which webhooks may not reach "
                                "(the operator may allow it: CVGRADE_WEBHOOK_ALLOW_PRIVATE=1)", 0.0)
        timestamp = int(self.service.clock().timestamp())
        secret = webhook_secret(self.service.secret_key, delivery.salt)
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, delivery.body),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: str(delivery.delivery_id),
        }
        try:
            response = self.client.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as err:
            return Answer(None, f"{type(err).__name__}: {err}"[:500], _ms_since(started))
        error = None
        if not 200 <= response.status_code < 300:
            error = f"the receiver answered {response.status_code}: {response.text[:200]}"
        return Answer(response.status_code, error, _ms_since(started))

    def _record(self, delivery: Claimed, answer: Answer) -> None:
        settings, now = self.service.settings, self.service.clock()
        with self.service.db.write() as session:
            row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery.delivery_id)
                                 .with_for_update())
            if row is None or row.state != "pending" or row.locked_by != self.name:
                session.rollback()  # deleted with its webhook, or the lease ran out and another sender has it
                return
            row.attempts += 1
            session.add(WebhookAttempt(delivery_id=row.id, number=row.attempts, started_at=now,
                                       duration_ms=round(answer.duration_ms, 2), status_code=answer.status_code,
                                       error=answer.error))
            row.last_status_code, row.last_error = answer.status_code, answer.error
            row.locked_by, row.locked_until = None, None
            if answer.ok:
                row.state, row.delivered_at = "delivered", now
            elif row.attempts >= settings.webhook_max_attempts:
                row.state = "failed"
                log.warning("webhook delivery %s given up after %d attempts: %s", row.id, row.attempts, answer.error)
            else:
                row.next_attempt_at = now + timedelta(seconds=backoff_s(settings.webhook_backoff_s, row.attempts))
            session.commit()


def backoff_s(base_s: float, attempts: int) -> float:
    """The wait after the ``attempts``-th failed send: doubling, capped, with up to 10% jitter."""
    wait = min(base_s * 2.0 ** (attempts - 1), MAX_BACKOFF_S)
    return wait * (1 + 0.1 * random.random())  # noqa: S311  # jitter, not a secret


def _resolves_to_public(host: str) -> bool:
    if not is_public_host(host):
        return False
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return True  # the POST itself will fail and say why
    return all(is_public_host(str(address).split("%")[0]) for address in addresses)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def next_attempt(delivery: WebhookDelivery) -> datetime | None:
    return delivery.next_attempt_at if delivery.state == "pending" else None
