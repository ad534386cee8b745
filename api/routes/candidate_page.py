"""The candidate's page: the statement, the starter kit, uploads (a file picker or drag and drop), the
grading followed live, the feedback, attempts left, the deadline and the time box.

::

    GET  /c/<token>              the link in the invitation: opens a session, then 303 to /candidate
    GET  /candidate              the page
    GET  /candidate/live         the page's live part (where things stand, the submissions), polled by its script
    GET  /candidate/starter-kit  the starter kit (zip)
    POST /candidate/submissions  an upload: JSON for the page's script, a redirect back for a plain form
    GET  /candidate/static/...   the page's own script and style sheet

Everything after the link rides on the session cookie (``api.candidate_access``);
the upload, the kit and the feedback go through the same functions as the
candidate's API (``api.routes.candidate``). The page is rendered on the server
and works without script (a plain form, reload to follow); our own script
(``api/static/candidate.js``, no library, nothing from elsewhere) adds drag and
drop, upload progress, live updates and the countdown. Every answer carries a
Content-Security-Policy that allows only our own script and style sheet, no
inline script, no framing, and no referrer (the link held the token). Nothing
here is part of the API's OpenAPI schema.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from api.candidate_access import COOKIE, LINK_PATH, PAGE_PATH, open_session, session_candidate
from api.deps import ServiceDep, service_of
from api.errors import ApiError, Forbidden, NotFound, Unauthorized
from api.invitations import CandidatePrincipal
from api.jobs.state import WAITING
from api.models import Invitation
from api.routes.candidate import invitation_view, receive_submission, started, starter_kit
from api.service import Service
from api.statement import statement_html
from api.submissions import candidate_submissions
from grader.errors import CvgradeError

_HERE = Path(__file__).resolve().parent.parent
_TEMPLATES = _HERE / "templates"
_STATIC = _HERE / "static"
_ASSETS = {"candidate.js": "text/javascript; charset=utf-8", "candidate.css": "text/css; charset=utf-8"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class NoSession(Exception):
    """No live candidate session: the page explains how to get one (open the invitation's link)."""


class PageRoute(APIRoute):
    """Errors on the page's routes are pages too (the upload answers JSON to the page's script itself)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except NoSession:
                return _no_session(request)
            except ApiError as err:
                return render(request, "candidate_error.html.j2", status=err.status, title="Not available",
                              message=err.message)
            except RequestValidationError:
                return render(request, "candidate_error.html.j2", status=404, title="Not found",
                              message="there is no such page")

        return page_handler


router = APIRouter(route_class=PageRoute, include_in_schema=False, default_response_class=HTMLResponse)


# -- rendering ----------------------------------------------------------------------------------

@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""
    environment.filters["iso"] = lambda moment: moment.isoformat() if moment else ""
    environment.filters["points"] = lambda value: "" if value is None else f"{value:g}"
    environment.filters["size"] = _size
    environment.filters["minutes"] = _minutes
    environment.globals["asset"] = _asset_url
    return environment


@functools.cache
def _asset_url(name: str) -> str:
    """The asset's URL with a digest of its content, so a browser never runs yesterday's script."""
    digest = hashlib.sha256((_STATIC / name).read_bytes()).hexdigest()[:12]
    return f"{PAGE_PATH}/static/{name}?v={digest}"


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    if size_bytes < 1024 * 1024:
        return f"{size_bytes / 1024:.1f} KiB"
    return f"{size_bytes / 2**20:.1f} MiB"


def _minutes(count: int) -> str:
    hours, minutes = divmod(count, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    body = _environment().get_template(template).render(page=PAGE_PATH, **context)
    return HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)


def _no_session(request: Request) -> HTMLResponse:
    base = service_of(request).settings.base_url(str(request.base_url))
    return render(request, "candidate_error.html.j2", status=401, title="Open your invitation's link", message=(
        f"this page opens from the link in your invitation (it starts with {base}{LINK_PATH}/). Open that link "
        "again; if it no longer works, the invitation may have been withdrawn or have expired: ask the hiring team"))


# -- who is looking -----------------------------------------------------------------------------

def page_candidate(request: Request, service: Service) -> CandidatePrincipal:
    with service.db.read() as session:
        candidate = session_candidate(session, request.cookies.get(COOKIE), service.clock())
    if candidate is None:
        raise NoSession
    return candidate


def _same_origin(request: Request) -> None:
    """Uploads come only from our own page (the cookie's SameSite=Lax already keeps other sites' posts out)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("uploads may only be sent from the candidate's page itself")


@router.get(LINK_PATH + "/{token}")
def enter(token: str, request: Request, service: ServiceDep) -> Response:
    """The invitation's link: trade the token for a session cookie and go to the clean address."""
    try:
        cookie, expires_at = _open(service, token)
    except Unauthorized as err:
        return render(request, "candidate_error.html.j2", status=401, title="This link does not open",
                      message=err.message.replace("invitation token", "link"))
    response = RedirectResponse(PAGE_PATH, status_code=303, headers={
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
    max_age = max(60, int((expires_at - service.clock()).total_seconds()))
    response.set_cookie(COOKIE, cookie, max_age=max_age, path=PAGE_PATH, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


def _open(service: Service, token: str) -> tuple[str, datetime]:
    with service.db.write() as session:
        candidate, cookie = open_session(session, token.strip(), service.clock())
        expires_at = session.get_one(Invitation, candidate.invitation_id).expires_at
        session.commit()
    return cookie, expires_at


# -- the page -----------------------------------------------------------------------------------

@router.get(PAGE_PATH)
def page(request: Request, service: ServiceDep) -> Response:
    candidate = page_candidate(request, service)
    started(service, candidate)
    context = _live_context(request, service, candidate)
    with service.db.read() as session:
        invitation = session.get_one(Invitation, candidate.invitation_id)
        statement = statement_html(context["view"].statement)
        label = invitation.candidate
    return render(request, "candidate.html.j2", title=context["view"].challenge.title, statement=statement,
                  candidate_label=label, upload_error=None, max_upload_mb=service.settings.max_upload_bytes / 2**20,
                  **context)


@router.get(PAGE_PATH + "/live")
def live(request: Request, service: ServiceDep) -> Response:
    """The page's live part alone, for its script to swap in."""
    candidate = page_candidate(request, service)
    return render(request, "candidate_live.html.j2", **_live_context(request, service, candidate))


def _live_context(request: Request, service: Service, candidate: CandidatePrincipal) -> dict[str, Any]:
    with service.db.read() as session:
        invitation = session.get_one(Invitation, candidate.invitation_id)
        view = invitation_view(session, service, invitation)
        submissions = list(reversed(candidate_submissions(session, service, candidate)))  # newest first
    now = service.clock()
    grading = any(submission.state in WAITING for submission in submissions)
    return {
        "view": view, "submissions": submissions, "grading": grading, "now": now,
        "seconds_left": max(0, int((view.uploads_close_at - now).total_seconds())),
        "base_url": service.settings.base_url(str(request.base_url)),
    }


@router.get(PAGE_PATH + "/starter-kit", response_class=Response)
def kit(request: Request, service: ServiceDep) -> Response:
    candidate = page_candidate(request, service)
    started(service, candidate)
    response = starter_kit(service, candidate)
    response.headers.update({"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    return response


@router.post(PAGE_PATH + "/submissions", response_model=None)
async def upload(request: Request) -> Response:
    """An upload from the page: its script gets the submission (or the error) as JSON; a plain form (no
    script) is sent back to the page, with the error shown there."""
    service = service_of(request)
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        _same_origin(request)
        candidate = await run_in_threadpool(page_candidate, request, service)
        view, replayed = await receive_submission(request, service, candidate,
                                                  request.headers.get("idempotency-key"))
    except NoSession:
        if wants_json:
            return JSONResponse({"error": "your session on this page has ended; open your invitation's link "
                                          "again"}, status_code=401)
        raise
    except (ApiError, CvgradeError) as err:
        status, message = (err.status, err.message) if isinstance(err, ApiError) else (err.http_status, str(err))
        if wants_json:
            return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})
        candidate = await run_in_threadpool(page_candidate, request, service)
        context = await run_in_threadpool(_live_context, request, service, candidate)
        with service.db.read() as session:
            label = session.get_one(Invitation, candidate.invitation_id).candidate
        return render(request, "candidate.html.j2", status=status, title=context["view"].challenge.title,
                      statement=statement_html(context["view"].statement), candidate_label=label,
                      upload_error=message, max_upload_mb=service.settings.max_upload_bytes / 2**20, **context)
    if wants_json:
        return JSONResponse(view.model_dump(mode="json"), status_code=200 if replayed else 202,
                            headers={"Cache-Control": "no-store"})
    return RedirectResponse(f"{PAGE_PATH}#submission-{view.id}", status_code=303)


@router.get(PAGE_PATH + "/static/{name}", response_class=Response)
def asset(name: str, v: str | None = None) -> Response:
    del v  # the content's digest, there to make a new version a new URL
    if name not in _ASSETS:
        raise NotFound(f"there is no file {name[:100]!r} here")
    return Response(_asset(name), media_type=_ASSETS[name], headers={
        "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


@functools.cache
def _asset(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


@router.get(PAGE_PATH + "/{rest:path}")
def no_such_page(rest: str) -> Response:
    if not rest.strip("/"):
        return RedirectResponse(PAGE_PATH, status_code=308)  # /candidate/ is the page
    raise NotFound(f"there is no page {PAGE_PATH}/{rest[:200]}")
