"""Dependencies of the routes: the service, database sessions, and who is calling.

Two bearer schemes, documented in the OpenAPI schema: a team's API key for the
team routes, a candidate's invitation token for the routes under
``/api/v1/candidate``. Each principal carries its team (or invitation), and
every query of a route filters by it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import ApiError, UnsupportedMediaType
from api.invitations import CandidatePrincipal, authenticate_candidate
from api.service import Service
from api.teams import TeamPrincipal, authenticate_team

_api_key = HTTPBearer(scheme_name="ApiKey", description="A team's API key (cvgk_...)", auto_error=False)
_invitation_token = HTTPBearer(
    scheme_name="InvitationToken", description="A candidate's invitation token (cvgi_...)", auto_error=False
)


# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` one in a worker thread, a hop
# that costs more than the work. Those that query the database stay plain, off the event loop.


def service_of(request: Request) -> Service:
    return cast(Service, request.app.state.service)


async def get_service(request: Request) -> Service:
    return service_of(request)


ServiceDep = Annotated[Service, Depends(get_service)]


async def read_session(service: ServiceDep) -> AsyncIterator[Session]:
    """A read transaction. Opening one does no I/O; closing it (ending the transaction, returning the
    connection) does, so that happens in a worker thread."""
    session = service.db.read()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


async def write_session(service: ServiceDep) -> AsyncIterator[Session]:
    """A write transaction; the route commits it (leaving without a commit rolls back)."""
    session = service.db.write()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


ReadSession = Annotated[Session, Depends(read_session)]
WriteSession = Annotated[Session, Depends(write_session)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials.strip() if credentials is not None else None


def team(
    service: ServiceDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key)]
) -> TeamPrincipal:
    with service.db.read() as session:
        return authenticate_team(session, _token(credentials))


def candidate(
    service: ServiceDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_invitation_token)]
) -> CandidatePrincipal:
    with service.db.read() as session:
        return authenticate_candidate(session, _token(credentials), service.clock())


Team = Annotated[TeamPrincipal, Depends(team)]
Candidate = Annotated[CandidatePrincipal, Depends(candidate)]


async def json_body(request: Request) -> None:
    """415 for a body that is not declared as JSON (before FastAPI tries to read it as one)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json"
            + (f", not {content_type}" if content_type else " (the request has no Content-Type)")
        )


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database; a larger one cannot exist
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
BeforeId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only entries older than this one (paging).")]
AfterId = Annotated[int | None, Query(ge=0, le=MAX_ID, description=(
    "Only entries after this one (paging: the `Link: <...>; rel=\"next\"` header of a full page gives the next)."))]
PAGE_LIMIT = 1000
PageLimit = Annotated[int, Query(ge=1, le=PAGE_LIMIT, description=f"At most this many entries (at most {PAGE_LIMIT}).")]


async def checked_query(request: Request) -> None:
    """400 for a query parameter the route does not take (``?challenge=iou`` for ``?challenge_id=``) or one given
    more than once (``?limit=1&limit=2``): silently ignoring it, or keeping the last, would hide the mistake."""
    known = _query_names(request.scope.get("route"))
    if known is None:
        return
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in known:
            takes = ", ".join(sorted(known)) if known else "no query parameters"
            raise ApiError(f"this route does not take the query parameter {name[:50]!r}; it takes {takes}")
        if name in seen:
            raise ApiError(f"the query parameter {name!r} was given more than once; give it once")
        seen.add(name)


def _query_names(route: object) -> frozenset[str] | None:
    """The query parameters a route (and its dependencies) declare; None for a route that is not FastAPI's.
    Worked out once per route and kept on it (routes are not hashable, so no cache dictionary)."""
    known: frozenset[str] | None = getattr(route, "_cvgrade_query_names", None)
    if known is not None:
        return known
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    known = frozenset(names)
    with contextlib.suppress(AttributeError):
        setattr(route, "_cvgrade_query_names", known)  # noqa: B010  # a private attribute of our own
    return known
