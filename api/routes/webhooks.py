"""The team's webhooks (API key): register (the secret is shown once), list, delete, and read each
one's delivery log. What is sent, and how to check its signature: ``api.webhooks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from api.deliveries import next_attempt
from api.deps import BeforeId, Id, ReadSession, ServiceDep, Team, WriteSession, json_body
from api.routes import errors
from api.schemas import WebhookAttemptPublic, WebhookCreate, WebhookCreated, WebhookDeliveryPublic, WebhookPublic
from api.webhooks import absolute_links, create_webhook, delete_webhook, delivery_log, team_webhooks

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=errors(401))


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Depends(json_body)],
             summary="Register a webhook: the answer holds its signing secret, shown this once",
             description=("When a submission's grading finishes (done, failed or not gradable) the service POSTs "
                          "a `submission.finished` event to the URL, signed with HMAC-SHA256: header "
                          "`X-Cvgrade-Signature: sha256=<hex>` over `<X-Cvgrade-Timestamp>.<raw body>`. A failed "
                          "delivery is sent again with exponential back-off."),
             responses=errors(400, 415, 422))
def post_webhook(body: WebhookCreate, team: Team, session: WriteSession, service: ServiceDep) -> WebhookCreated:
    created = create_webhook(session, team, body, service.secret_key, service.clock(),
                             allow_private=service.settings.webhook_allow_private)
    session.commit()
    return created


@router.get("", summary="Your team's webhooks, with how many deliveries are pending, made and failed")
def list_webhooks(team: Team, session: ReadSession) -> list[WebhookPublic]:
    return team_webhooks(session, team)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a webhook: nothing more is sent to it (what it still owed is dropped)",
               responses=errors(404))
def remove_webhook(webhook_id: Id, team: Team, session: WriteSession, service: ServiceDep) -> Response:
    delete_webhook(session, team, webhook_id, service.clock())
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", summary="A webhook's deliveries, newest first, each with its attempts",
            responses=errors(404))
def list_deliveries(
    webhook_id: Id, team: Team, session: ReadSession, service: ServiceDep, request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: BeforeId = None,
) -> list[WebhookDeliveryPublic]:
    return [
        WebhookDeliveryPublic(
            id=delivery.id, event=delivery.event, state=delivery.state,  # type: ignore[arg-type]
            attempts=delivery.attempts, next_attempt_at=next_attempt(delivery),
            last_status_code=delivery.last_status_code, last_error=delivery.last_error,
            created_at=delivery.created_at, delivered_at=delivery.delivered_at,
            payload=absolute_links(delivery.payload, service.settings.base_url(str(request.base_url))),
            log=[WebhookAttemptPublic(number=a.number, started_at=a.started_at, duration_ms=a.duration_ms,
                                      status_code=a.status_code, error=a.error) for a in attempts],
        )
        for delivery, attempts in delivery_log(session, team, webhook_id, limit=limit, before_id=before_id)
    ]
