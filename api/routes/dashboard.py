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
from api.comparison import RankBy, compare, metric_description
from api.copies import candidate_similarity, reference_share, similar_submissions
from api.deps import Id, ReadSession, ServiceDep, service_of
from api.errors import ApiError, Forbidden, NotFound, Unauthorized
from api.invitations import attempts_used, same_candidate, team_invitation, team_invitations, uploads_close_at
from api.models import Result, Submission
from api.regrade import result_versions
from api.review import current_decisions, decisions, notes
from api.schemas import Comparison, SubmissionPublic
from api.service import Service
from api.sessions import COOKIE, SESSION_HOURS, log_in, log_out, team_of
from api.similarity import refreshed
from api.sources import code_css, stored_submission, submission_sources, unit_anchors
from api.submissions import team_submission, team_submissions
from api.teams import TeamPrincipal
from grader.check_targets import check_functions, definitions
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
    environment.filters["percent"] = lambda value: f"{value:.0%}"
    environment.filters["number"] = _number
    environment.globals["describe"] = metric_description
    return environment


def _number(value: object) -> str:
    """A metric as a person reads it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


# What a form did, said on the page it leads back to (``?done=``): only these, never text from the URL.
DONE = {
    "note": "Your note is saved.", "decision": "Your decision is saved.", "changed": "The invitation is changed.",
    "revoked": "The invitation is revoked: its token no longer works.", "regrade": (
        "The submission is queued to be graded again; its current result is kept as a past version."),
    "known": "The known solution is added and compared with every submission.",
    "removed": "The known solution is removed.",
}


@functools.cache
def _style_sheet() -> Markup:
    """Our own CSS, inserted as it is (escaping would turn its ``>`` combinators into ``&gt;``)."""
    css = report_css() + code_css() + (_TEMPLATES / "dashboard.css").read_text(encoding="utf-8")
    assert "</" not in css, "a style sheet must not close its <style> element"
    return Markup(css)  # noqa: S704  # files of ours, never data


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

Done = str | None  # the ``done`` query parameter of pages that forms lead back to


@router.get("")
def invitations_page(request: Request, service: ServiceDep, session: ReadSession,
                     challenge_id: str | None = None, done: Done = None) -> Response:
    team = page_team(request, service)
    invitations = team_invitations(session, team, challenge_id)
    used = attempts_used(session, [invitation.id for invitation in invitations])
    same = same_candidate(session, invitations)
    decided = current_decisions(session, team)
    latest: dict[int, SubmissionPublic] = {}
    for row in team_submissions(session, team, challenge_id=challenge_id):
        latest[row.invitation_id] = row  # oldest first: the last one wins
    counts = dict(session.execute(
        select(Submission.challenge_id, func.count()).where(Submission.team_id == team.team_id)
        .group_by(Submission.challenge_id)).all())
    challenges = [(challenge, counts.get(challenge.id, 0)) for challenge in service.challenges()]
    return render(request, "invitations.html.j2", team=team, title="Invitations", challenges=challenges,
                  invitations=[(invitation, used[invitation.id], latest.get(invitation.id), same[invitation.id],
                                decided.get(invitation.id)) for invitation in invitations],
                  challenge_id=challenge_id, done=DONE.get(done or ""), now=service.clock())


@router.get("/invitations/{invitation_id}")
def invitation_page(invitation_id: Id, request: Request, service: ServiceDep, session: ReadSession,
                    done: Done = None) -> Response:
    team = page_team(request, service)
    invitation = team_invitation(session, team, invitation_id)
    link = candidate_url(service.secret_key, invitation, service.settings.base_url(str(request.base_url)))
    refreshed(session, service, team.team_id, service.challenge(invitation.challenge_id))
    return render(request, "invitation.html.j2", team=team, title=invitation.candidate, invitation=invitation,
                  used=attempts_used(session, [invitation.id])[invitation.id],
                  same=same_candidate(session, [invitation])[invitation.id],
                  candidate_link=link, closes_at=uploads_close_at(invitation),
                  submissions=team_submissions(session, team, invitation_id=invitation.id),
                  similar=similar_submissions(session, team, invitation.challenge_id),
                  decisions=decisions(session, team, invitation.id),
                  notes=notes(session, team, invitation_id=invitation.id), done=DONE.get(done or ""),
                  now=service.clock())


@router.get("/challenges/{challenge_id}/submissions")
def challenge_submissions_page(challenge_id: str, request: Request, service: ServiceDep, session: ReadSession
                               ) -> Response:
    team = page_team(request, service)
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    return render(request, "submissions.html.j2", team=team, title=f"Submissions to {challenge.id}",
                  challenge=challenge, submissions=team_submissions(session, team, challenge_id=challenge.id),
                  similar=similar_submissions(session, team, challenge.id))


@router.get("/challenges/{challenge_id}/comparison")
def comparison_page(challenge_id: str, request: Request, service: ServiceDep, session: ReadSession,
                    rank_by: RankBy = "best") -> Response:
    team = page_team(request, service)
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    comparison = compare(session, team, challenge, rank_by)
    return render(request, "comparison.html.j2", team=team, title=f"Comparison: {challenge.id}", wide=True,
                  challenge=challenge, comparison=comparison, bars=_score_bars(comparison),
                  pass_x=_CHART_WIDTH * challenge.spec.challenge.pass_mark, chart_width=_CHART_WIDTH,
                  checks=[(number, check) for number, check in enumerate(challenge.spec.checks, start=1)])


@router.get("/submissions/{submission_id}")
def submission_page(submission_id: Id, request: Request, service: ServiceDep, session: ReadSession,
                    done: Done = None) -> Response:
    team = page_team(request, service)
    submission = team_submission(session, team, submission_id)
    challenge = service.challenge(submission.challenge_id)
    refreshed(session, service, team.team_id, challenge)
    body = session.scalar(select(Result.body).where(Result.submission_id == submission.id))
    report = None
    if body is not None:
        report = render_report_body(GradeResult.model_validate(body), audience="team",
                                    code_links=_code_links(service, session, team, submission.id, challenge))
    return render(request, "submission.html.j2", team=team, title=f"Submission {submission.id}",
                  submission=submission, versions=result_versions(session, team, submission.id),
                  similar=candidate_similarity(session, team, submission.invitation_id),
                  reference=reference_share(session, team, submission.id),
                  notes=notes(session, team, submission_id=submission.id), done=DONE.get(done or ""),
                  report=Markup(report) if report else None)  # noqa: S704  # the grader's autoescaped template


def _code_links(service: Service, session: ReadSession, team: TeamPrincipal, submission_id: int,
                challenge: Any) -> dict[str, list[tuple[str, str]]]:
    """For each check, links to the candidate's definitions of the functions it calls."""
    sources = submission_sources(service, stored_submission(session, team, submission_id))
    wanted = check_functions(challenge)
    found = definitions(sources.code_units(), sorted({name for names in wanted.values() for name in names}))
    anchors = unit_anchors(sources)
    code = f"{PREFIX}/submissions/{submission_id}/code"
    return {check: [(f"the candidate's {name} ({found[name].label}, line {found[name].line})",
                     f"{code}#{anchors[found[name].unit]}-L{found[name].line}") for name in names if name in found]
            for check, names in wanted.items()}


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
    """Add the pages (the code, copies and review pages of ``api.routes.review_pages`` first: this
    router ends with its catch-all), and send a person who opens the server's root to them."""
    from api.routes import review_pages

    app.include_router(review_pages.router)
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(PREFIX, status_code=307)
