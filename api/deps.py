"""Dependencies of the routes: the service, database sessions, and who is calling.

Two bearer schemes, documented in the OpenAPI schema: a team's API key for the
team routes, a candidate's invitation token for the routes under
``/api/v1/candidate``. Each principal carries its team (or invitation), and
every query of a route filters by it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import UnsupportedMediaType
from api.invitations import CandidatePrincipal, authenticate_candidate
from api.service import Service
from api.teams import TeamPrincipal, authenticate_team

_api_key = HTTPBearer(scheme_name="ApiKey", description="A team's API key (cvgk_...)", auto_error=False)
_invitation_token = HTTPBearer(
    scheme_name="InvitationToken", description="A candidate's invitation token (cvgi_...)", auto_error=False
)


def get_service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


ServiceDep = Annotated[Service, Depends(get_service)]


def read_session(service: ServiceDep) -> Iterator[Session]:
    with service.db.read() as session:
        yield session


def write_session(service: ServiceDep) -> Iterator[Session]:
    """A write transaction; the route commits it (leaving without a commit rolls back)."""
    with service.db.write() as session:
        yield session


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


def json_body(request: Request) -> None:
    """415 for a body that is not declared as JSON (before FastAPI tries to read it as one)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json"
            + (f", not {content_type}" if content_type else " (the request has no Content-Type)")
        )
