"""The dashboard: server-rendered pages for the hiring team, under ``/dashboard``.

Pages: the team's invitations (and its challenges), one invitation with its
submissions, a challenge's submissions, one submission's report (the grader's
own HTML report, ``grader.html_report``, with its charts), and a challenge's
comparison. They read through the same functions as the API, which filter by
the caller's team: another team's id is a 404 page, as an unknown one is.

Logging in takes the team's API key once (``api.sessions``); the pages then
ride on a session cookie. Every page is sent with a Content-Security-Policy
that allows no script at all and only its own style sheet (by nonce), so even
a string that escaped escaping could not run. Nothing here is part of the API's
OpenAPI schema.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.datastructures import FormData

from api.candidate_access import candidate_url
from api.deps import Id, ReadSession, ServiceDep, service_of
from api.errors import ApiError, Forbidden, NotFound, Unauthorized
from api.invitations import attempts_used, team_invitation, team_invitations, uploads_close_at
from api.models import Result, Submission
from api.schemas import Comparison, SubmissionPublic
from api.service import Service
from api.sessions import COOKIE, SESSION_HOURS, log_in, log_out, team_of
from api.submissions import compare, team_submission, team_submissions
from api.teams import TeamPrincipal
from grader.html_report import render_report_body, report_css
from grader.results import GradeResult

PREFIX = "/dashboard"
_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_CHART_WIDTH = 560


class LoginRequired(Exception):
    """No live session: the page answers with a redirect to the login form."""


class PageRoute(APIRoute):
    """A page's errors are pages too: a login redirect, or an HTML page with the error's status and
    sentence (not the API's JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='/')}", status_code=303)
            except ApiError as err:
                return render(request, "error.html.j2", status=err.status, title="Not available",
                              message=err.message)
            except RequestValidationError:
                return render(request, "error.html.j2", status=404, title="Not found",
                              message="there is no such page")

        return page_handler


router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False,
                   default_response_class=HTMLResponse)


# -- rendering ----------------------------------------------------------------------------------

@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""
    environment.filters["points"] = lambda value: "" if value is None else f"{value:g}"
    return environment


@functools.cache
def _style_sheet() -> str:
    return report_css() + (_TEMPLATES / "dashboard.css").read_text(encoding="utf-8")


def render(request: Request, template: str, *, status: int = 200, team: TeamPrincipal | None = None,
           **context: Any) -> HTMLResponse:
    """A page, with headers that keep it to itself: no script, no framing, no caching, no referrer."""
    nonce = secrets.token_urlsafe(16)
    body = _environment().get_template(template).render(
        css=_style_sheet(), nonce=nonce, team=team, prefix=PREFIX, path=request.url.path, **context)
    return HTMLResponse(body, status_code=status, headers={
        "Content-Security-Policy": (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
                                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    })


# -- who is looking -----------------------------------------------------------------------------

def page_team(request: Request, service: Service) -> TeamPrincipal:
    with service.db.read() as session:
        team = team_of(session, request.cookies.get(COOKIE), service.clock())
    if team is None:
        raise LoginRequired
    return team


def _same_origin(request: Request) -> None:
    """Forms post only from our own pages (the cookie's SameSite=Strict already keeps other sites out)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("this form may only be sent from the dashboard's own pages")


def _next_page(raw: object) -> str:
    """Where to go after logging in: a dashboard path of ours, never another site."""
    target = str(raw or "")
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


@router.get("/login")
def login_form(request: Request, service: ServiceDep, next: str = PREFIX) -> Response:
    with service.db.read() as session:
        if team_of(session, request.cookies.get(COOKIE), service.clock()) is not None:
            return RedirectResponse(_next_page(next), status_code=303)
    return render(request, "login.html.j2", title="Log in", next=_next_page(next), error=None,
                  session_hours=SESSION_HOURS)


@router.post("/login")
async def login(request: Request) -> Response:
    _same_origin(request)
    service = service_of(request)
    form: FormData = await request.form()
    key, target = str(form.get("api_key") or ""), _next_page(form.get("next"))
    try:
        token = await run_in_threadpool(_open_session, service, key)
    except Unauthorized as err:
        return render(request, "login.html.j2", status=401, title="Log in", next=target, error=err.message,
                      session_hours=SESSION_HOURS)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, max_age=SESSION_HOURS * 3600, path=PREFIX, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def _open_session(service: Service, key: str) -> str:
    with service.db.write() as session:
        _, token = log_in(session, key, service.clock())
        session.commit()
    return token


@router.post("/logout")
def logout(request: Request, service: ServiceDep) -> Response:
    _same_origin(request)
    with service.db.write() as session:
        log_out(session, request.cookies.get(COOKIE))
        session.commit()
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


# -- pages --------------------------------------------------------------------------------------

@router.get("")
def invitations_page(request: Request, service: ServiceDep, session: ReadSession,
                     challenge_id: str | None = None) -> Response:
    team = page_team(request, service)
    invitations = team_invitations(session, team, challenge_id)
    used = attempts_used(session, [invitation.id for invitation in invitations])
    latest: dict[int, SubmissionPublic] = {}
    for row in team_submissions(session, team, challenge_id=challenge_id):
        latest[row.invitation_id] = row  # oldest first: the last one wins
    counts = dict(session.execute(
        select(Submission.challenge_id, func.count()).where(Submission.team_id == team.team_id)
        .group_by(Submission.challenge_id)).all())
    challenges = [(challenge, counts.get(challenge.id, 0)) for challenge in service.challenges()]
    return render(request, "invitations.html.j2", team=team, title="Invitations", challenges=challenges,
                  invitations=[(invitation, used[invitation.id], latest.get(invitation.id))
                               for invitation in invitations], challenge_id=challenge_id)


@router.get("/invitations/{invitation_id}")
def invitation_page(invitation_id: Id, request: Request, service: ServiceDep, session: ReadSession) -> Response:
    team = page_team(request, service)
    invitation = team_invitation(session, team, invitation_id)
    link = candidate_url(service.secret_key, invitation, service.settings.base_url(str(request.base_url)))
    return render(request, "submissions.html.j2", team=team, title=f"Invitation {invitation.id}",
                  invitation=invitation, used=attempts_used(session, [invitation.id])[invitation.id],
                  candidate_link=link, closes_at=uploads_close_at(invitation),
                  challenge=None, submissions=team_submissions(session, team, invitation_id=invitation.id))


@router.get("/challenges/{challenge_id}/submissions")
def challenge_submissions_page(challenge_id: str, request: Request, service: ServiceDep, session: ReadSession
                               ) -> Response:
    team = page_team(request, service)
    challenge = service.challenge(challenge_id)
    return render(request, "submissions.html.j2", team=team, title=f"Submissions to {challenge.id}",
                  invitation=None, used=0, challenge=challenge, candidate_link=None, closes_at=None,
                  submissions=team_submissions(session, team, challenge_id=challenge.id))


@router.get("/challenges/{challenge_id}/comparison")
def comparison_page(challenge_id: str, request: Request, service: ServiceDep, session: ReadSession) -> Response:
    team = page_team(request, service)
    challenge = service.challenge(challenge_id)
    comparison = compare(session, team, challenge.id, [check.name for check in challenge.spec.checks])
    return render(request, "comparison.html.j2", team=team, title=f"Comparison: {challenge.id}",
                  challenge=challenge, comparison=comparison, bars=_score_bars(comparison),
                  pass_x=_CHART_WIDTH * challenge.spec.challenge.pass_mark, chart_width=_CHART_WIDTH,
                  metric_names=sorted({name for row in comparison.rows for name in row.metrics}))


@router.get("/submissions/{submission_id}")
def submission_page(submission_id: Id, request: Request, service: ServiceDep, session: ReadSession) -> Response:
    team = page_team(request, service)
    submission = team_submission(session, team, submission_id)
    body = session.scalar(select(Result.body).where(Result.submission_id == submission.id))
    report = render_report_body(GradeResult.model_validate(body), audience="team") if body is not None else None
    return render(request, "submission.html.j2", team=team, title=f"Submission {submission.id}",
                  submission=submission,
                  report=Markup(report) if report else None)  # noqa: S704  # the grader's autoescaped template


def _score_bars(comparison: Comparison) -> list[dict[str, Any]]:
    """One bar per ranked candidate: the share of the maximum score, coloured by the verdict."""
    return [
        {"y": index * 26, "width": max(_CHART_WIDTH * (row.score or 0.0) / (row.max_score or 1.0), 1.0),
         "passed": row.passed, "label": f"{row.rank}. {row.candidate}",
         "score": f"{row.score or 0:g} / {row.max_score:g}"}
        for index, row in enumerate(comparison.rows)
    ]


@router.get("/{rest:path}")
def no_such_page(rest: str, request: Request) -> Response:
    raise NotFound(f"there is no page {PREFIX}/{rest[:200]}")


def install(app: FastAPI) -> None:
    """Add the pages, and send a person who opens the server's root to them."""
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(PREFIX, status_code=307)
