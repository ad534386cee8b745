"""Webhooks: a team registers URLs; when one of its jobs finishes the service POSTs a signed event.

Signing, as a receiver checks it::

    X-Cvgrade-Timestamp: 1767225600
    X-Cvgrade-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the webhook's secret>

``verify_signature`` is that check (and refuses timestamps older than five
minutes, so a captured request cannot be replayed later). Each webhook's
secret is shown once, when it is registered; the service does not store it but
derives it again when it signs: ``HMAC-SHA256(server key, the webhook's salt)``
(``api.secret_key``).

Events are written to ``webhook_deliveries`` in the same transaction as the
job's outcome (an outbox), so a finished job always has its deliveries, and a
restart loses none; ``api.deliveries`` sends them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api import audit
from api.errors import ApiError, NotFound
from api.models import Invitation, Submission, Webhook, WebhookAttempt, WebhookDelivery
from api.schemas import WebhookCreate, WebhookCreated, WebhookPublic
from api.teams import TeamPrincipal

SECRET_PREFIX = "whsec_"  # noqa: S105  # a prefix, not a secret
SIGNATURE_HEADER = "X-Cvgrade-Signature"
TIMESTAMP_HEADER = "X-Cvgrade-Timestamp"
EVENT_HEADER = "X-Cvgrade-Event"
DELIVERY_HEADER = "X-Cvgrade-Delivery"
FINISHED_EVENT = "submission.finished"
MAX_WEBHOOKS_PER_TEAM = 20
REPLAY_TOLERANCE_S = 300
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


# -- secrets and signatures ---------------------------------------------------------------------

def webhook_secret(server_key: bytes, salt: str) -> str:
    """The webhook's signing secret: the same every time for the same key and salt."""
    digest = hmac.new(server_key, f"cvgrade webhook {salt}".encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Cvgrade-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, timestamp: str | None, signature: str | None, *,
    now: float | None = None, tolerance_s: float = REPLAY_TOLERANCE_S,
) -> bool:
    """What a receiver does: the signature matches the raw body and the timestamp is recent."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature.strip())


# -- registering --------------------------------------------------------------------------------

def check_url(url: str, *, allow_private: bool) -> str:
    """A URL the service may POST to: http(s), a host that can exist (a DNS name or an address), no
    credentials; no loopback or private address given literally unless the operator allows it (names are
    checked when sending)."""
    url = url.strip()
    if any(character.isspace() or not character.isprintable() for character in url):
        raise ApiError("a webhook URL may not hold spaces or control characters; write a space in a path as %20")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:  # "http://[nonsense", "http://host:99999"
        raise ApiError("a webhook URL must be a valid http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError("a webhook URL must start with http:// or https:// and name a host")
    if not is_valid_host(host):
        raise ApiError(f"the webhook's host {host[:100]!r} is not a valid host name or address (a name is "
                       "labels of letters, digits and hyphens, separated by dots, such as hooks.example.com)")
    if parts.username or parts.password:
        raise ApiError("a webhook URL must not hold a user name or password; authenticate with the signature")
    if not allow_private and not is_public_host(host):
        raise ApiError(f"the webhook's host {host} is a loopback or private address; the operator "
                       "may allow those with CVGRADE_WEBHOOK_ALLOW_PRIVATE=1")
    return url


def is_valid_host(host: str) -> bool:
    """An IP address, or a DNS name: 1 to 63 letters, digits or hyphens a label (not starting or ending with
    a hyphen), labels joined by dots, 253 characters at most; international names by their IDNA form."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    try:
        name = host.encode("idna").decode("ascii").rstrip(".")
    except UnicodeError:
        return False
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def is_public_host(host: str) -> bool:
    """False for ``localhost`` and loopback, private, link-local and reserved addresses."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True  # a name: resolved and checked when sending
    return address.is_global


def create_webhook(
    session: Session, team: TeamPrincipal, body: WebhookCreate, server_key: bytes, now: datetime, *,
    allow_private: bool,
) -> WebhookCreated:
    url = check_url(body.url, allow_private=allow_private)
    count = session.scalar(select(func.count()).select_from(Webhook).where(
        Webhook.team_id == team.team_id, Webhook.deleted_at.is_(None))) or 0
    if count >= MAX_WEBHOOKS_PER_TEAM:
        raise ApiError(f"a team may have at most {MAX_WEBHOOKS_PER_TEAM} webhooks; delete one first")
    webhook = Webhook(team_id=team.team_id, url=url, description=body.description.strip(),
                      secret_salt=secrets.token_hex(16), created_at=now)
    session.add(webhook)
    session.flush()
    audit.record(session, team_id=team.team_id, actor=team.actor, action="webhook.created",
                 subject=f"webhook {webhook.id}", now=now, url=url)
    public = to_public(webhook, {})
    return WebhookCreated(**public.model_dump(), secret=webhook_secret(server_key, webhook.secret_salt))


def team_webhook(session: Session, team: TeamPrincipal, webhook_id: int) -> Webhook:
    """The team's webhook, or 404 (also when it is another team's)."""
    webhook = session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.team_id == team.team_id,
                                                   Webhook.deleted_at.is_(None)))
    if webhook is None:
        raise NotFound(f"your team has no webhook {webhook_id}")
    return webhook


def team_webhooks(session: Session, team: TeamPrincipal) -> list[WebhookPublic]:
    webhooks = list(session.scalars(select(Webhook).where(Webhook.team_id == team.team_id,
                                                          Webhook.deleted_at.is_(None)).order_by(Webhook.id)))
    counts: dict[int, dict[str, int]] = {webhook.id: {} for webhook in webhooks}
    for webhook_id, state, count in session.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.state, func.count())
        .where(WebhookDelivery.team_id == team.team_id)
        .group_by(WebhookDelivery.webhook_id, WebhookDelivery.state)
    ):
        if webhook_id in counts:
            counts[webhook_id][state] = count
    return [to_public(webhook, counts[webhook.id]) for webhook in webhooks]


def delete_webhook(session: Session, team: TeamPrincipal, webhook_id: int, now: datetime) -> None:
    """Nothing more is sent to the webhook: it and its log disappear from the API. The rows stay
    (marked deleted), so a job finishing or a delivery being sent meanwhile never meets a missing row."""
    webhook = team_webhook(session, team, webhook_id)
    webhook.deleted_at = now
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.state == "pending")
        .values(state="failed", last_error="not sent: the webhook was deleted", locked_by=None, locked_until=None)
    )
    audit.record(session, team_id=team.team_id, actor=team.actor, action="webhook.deleted",
                 subject=f"webhook {webhook_id}", now=now, url=webhook.url)


def to_public(webhook: Webhook, counts: dict[str, int]) -> WebhookPublic:
    return WebhookPublic(
        id=webhook.id, url=webhook.url, description=webhook.description, created_at=webhook.created_at,
        pending=counts.get("pending", 0), delivered=counts.get("delivered", 0), failed=counts.get("failed", 0),
    )


# -- events -------------------------------------------------------------------------------------

def enqueue_finished(
    session: Session, submission_id: int, *, state: str, score: float | None, max_score: float | None,
    passed: bool | None, error: str | None, charged: bool, now: datetime,
) -> int:
    """Add a ``submission.finished`` delivery for each of the team's webhooks to ``session`` (stored
    when, and only if, the caller commits the job's outcome). Returns how many."""
    submission = session.get_one(Submission, submission_id)
    webhooks = list(session.scalars(select(Webhook.id).where(Webhook.team_id == submission.team_id,
                                                             Webhook.deleted_at.is_(None))))
    if not webhooks:
        return 0
    invitation = session.get_one(Invitation, submission.invitation_id)
    payload: dict[str, Any] = {
        "event": FINISHED_EVENT,
        "created_at": now.isoformat(),
        "submission": {
            "id": submission.id, "invitation_id": invitation.id, "candidate": invitation.candidate,
            "challenge_id": submission.challenge_id, "challenge_version": submission.challenge_version,
            "filename": submission.filename, "state": state, "score": score, "max_score": max_score,
            "passed": passed, "charged": charged, "error": error,
        },
        "links": {"submission": f"/api/v1/submissions/{submission.id}",  # absolute when sent: absolute_links
                  "result": f"/api/v1/submissions/{submission.id}/result"},
    }
    for webhook_id in webhooks:
        session.add(WebhookDelivery(
            webhook_id=webhook_id, team_id=submission.team_id, event=FINISHED_EVENT, payload=payload,
            state="pending", attempts=0, next_attempt_at=now, created_at=now,
        ))
    return len(webhooks)


def absolute_links(payload: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The payload with its ``links`` made absolute from the service's public URL (``CVGRADE_PUBLIC_URL``): what
    is sent. Stored relative, so a changed public URL applies to deliveries still waiting."""
    links = payload.get("links")
    if not isinstance(links, dict):
        return payload
    base = base_url.rstrip("/")
    return {**payload, "links": {name: base + link if isinstance(link, str) and link.startswith("/") else link
                                 for name, link in links.items()}}


def delivery_log(
    session: Session, team: TeamPrincipal, webhook_id: int, *, limit: int = 50, before_id: int | None = None,
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A webhook's deliveries, newest first, each with its attempts in order."""
    webhook = team_webhook(session, team, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id,
                                          WebhookDelivery.team_id == team.team_id)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    deliveries = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))
    attempts: dict[int, list[WebhookAttempt]] = {delivery.id: [] for delivery in deliveries}
    if deliveries:
        for attempt in session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(delivery, attempts[delivery.id]) for delivery in deliveries]
