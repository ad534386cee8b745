"""The FastAPI application: routes under ``/api/v1``, errors as JSON, a cap on request bodies,
and its job runner (``api.jobs``) started and stopped with it.

``create_app(settings)`` is what ``cvgrade serve`` runs; tests call it with a
fake ``grade`` function (the boundary between the service and the grader) and
a clock they control.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.config import Settings
from api.db import Database, migrate
from api.deliveries import WebhookSender
from api.deps import checked_query
from api.errors import install_error_handlers
from api.jobs.policy import GradeFunction
from api.jobs.pool import GradingPool
from api.jobs.runner import JobRunner
from api.logs import install_token_mask
from api.routes import (
    candidate,
    candidate_page,
    dashboard,
    docs,
    errors,
    meta,
    review,
    sources,
    submissions,
    team,
    webhooks,
)
from api.service import Clock, Service, utc_now
from api.similarity import SimilarityKeeper
from api.store import FileUploadStore
from api.uploads import FORM_OVERHEAD_BYTES, too_large
from grader import __version__

log = logging.getLogger("cvgrade.api")
API_PREFIX = "/api/v1"
UPLOAD_PATHS = (f"{API_PREFIX}/candidate/submissions", "/candidate/submissions")  # the API's, the page's

DESCRIPTION = """
Hiring teams invite candidates to a challenge; candidates upload a solution;
the service grades it in the sandbox against hidden checks and keeps the result.

* **Team routes** take a team's API key: `Authorization: Bearer cvgk_...`
  (`cvgrade admin create-team NAME` prints the first one).
* **Candidate routes** (under `/api/v1/candidate`) take the invitation token the
  team received when it created the invitation: `Authorization: Bearer cvgi_...`.

Every error is a JSON object `{"error": "<a sentence>"}`.
"""


def create_app(
    settings: Settings,
    *,
    grade: GradeFunction | None = None,
    stop_gradings: Callable[[], None] | None = None,
    clock: Clock = utc_now,
    workers: bool = True,
) -> FastAPI:
    """The service. Its lifespan migrates the database, then starts its job runner (``settings.jobs``
    grading threads, or the fleet's dispatcher with a broker) and its background senders (unless
    ``workers`` is False), and on shutdown stops them, putting unfinished jobs back."""
    service = Service(settings=settings, db=Database(settings.database_url),
                      store=FileUploadStore(settings.uploads_dir), clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        install_token_mask()  # after uvicorn has configured its loggers
        migrate(service.db)
        settings.staging_dir.mkdir(parents=True, exist_ok=True)
        runner: JobRunner
        if settings.broker_url:
            from api.jobs.broker import make_celery
            from api.jobs.dispatcher import CeleryDispatcher

            runner = CeleryDispatcher(service, make_celery(settings.broker_url),
                                      no_worker_timeout_s=settings.no_worker_timeout_s)
        else:
            runner = GradingPool(service, grade=grade, stop_gradings=stop_gradings)
        sender = WebhookSender(service)
        keeper = SimilarityKeeper(service)
        if workers:
            runner.start()
            sender.start()
            keeper.start()
        service.runner = runner
        log.info("cvgrade service ready: database %s, data in %s", service.db.describe(), settings.data_dir)
        try:
            yield
        finally:
            runner.stop()
            sender.stop()
            keeper.stop()
            service.db.dispose()

    app = FastAPI(
        title="cvgrade", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None,  # /docs: api.routes.docs
        dependencies=[Depends(checked_query)], responses=errors(400),  # any route: an unknown or repeated query
    )
    app.state.service = service
    install_error_handlers(app)
    for router in (meta.router, team.router, submissions.router, review.router, sources.router, candidate.router,
                   webhooks.router):
        app.include_router(router, prefix=API_PREFIX)
    docs.install(app, f"{API_PREFIX}/openapi.json")  # Swagger UI from our own files, and /openapi.json
    dashboard.install(app)  # HTML pages under /dashboard, outside the API's schema
    app.include_router(candidate_page.router)  # the candidate's page: /c/<token>, then /candidate
    app.add_middleware(BodyLimit, max_json_bytes=settings.max_json_bytes, max_upload_bytes=settings.max_upload_bytes)
    return app


class BodyLimit:
    """Refuse request bodies over the limit with 413: uploads may be large, everything else is small.

    A declared ``Content-Length`` over the limit (for uploads: the file's limit
    plus room for a form's boundaries) is answered before the body is read, in
    the same words as the upload route's own, exact cap on the file while it
    streams; a chunked JSON body is cut off where it passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"].rstrip("/") in UPLOAD_PATHS
        limit = self.max_upload_bytes + FORM_OVERHEAD_BYTES if upload else self.max_json_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            message = (too_large(self.max_upload_bytes, int(declared)).message if upload else
                       f"a request body may be at most {limit / 2**20:g} MiB; this one is "
                       f"{int(declared) / 2**20:.1f} MiB")
            await _send_json(send, 413, message)
            return
        if upload:
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"a request body may be at most {limit / 2**20:g} MiB")
            return message

        await self.app(scope, counting_receive, send)


async def _send_json(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
