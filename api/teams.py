"""Teams and their API keys: create, list, revoke, and check a key on every team request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from api import audit
from api.errors import Conflict, NotFound, Unauthorized
from api.models import ApiKey, Invitation, Team
from api.tokens import kind_of, new_token, shown_prefix, token_sha256

ADMIN = "admin (command line)"


@dataclass(frozen=True)
class TeamPrincipal:
    """Who is calling a team route: the team and the key it used."""

    team_id: int
    team_name: str
    key_id: int
    candidates_see_scores: bool

    @property
    def actor(self) -> str:
        return f"api key {self.key_id}"


def create_team(session: Session, name: str, now: datetime) -> tuple[Team, ApiKey, str]:
    """A new team and its first API key; the key itself is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 200:
        raise Conflict("a team's name must be 1 to 200 characters")
    if session.scalar(select(Team).where(Team.name == name)) is not None:
        raise Conflict(f"there is already a team named {name!r}")
    team = Team(name=name, candidates_see_scores=False, created_at=now)
    session.add(team)
    session.flush()
    audit.record(session, team_id=team.id, actor=ADMIN, action="team.created", subject=f"team {team.id}",
                 now=now, name=name)
    key, token = create_key(session, team, now, label="first key")
    return team, key, token


def create_key(session: Session, team: Team, now: datetime, *, label: str = "") -> tuple[ApiKey, str]:
    token, digest = new_token("team")
    key = ApiKey(team_id=team.id, token_sha256=digest, prefix=shown_prefix(token), label=label[:200],
                 created_at=now, revoked_at=None)
    session.add(key)
    session.flush()
    audit.record(session, team_id=team.id, actor=ADMIN, action="api_key.created", subject=f"api key {key.id}",
                 now=now, prefix=key.prefix, label=key.label)
    return key, token


def revoke_key(session: Session, key_id: int, now: datetime) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"there is no API key {key_id}; `cvgrade admin list-teams --keys` lists them")
    if key.revoked_at is None:
        key.revoked_at = now
        audit.record(session, team_id=key.team_id, actor=ADMIN, action="api_key.revoked",
                     subject=f"api key {key.id}", now=now, prefix=key.prefix)
    return key


def find_team(session: Session, name_or_id: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name_or_id))
    if team is None and name_or_id.isdigit():
        team = session.get(Team, int(name_or_id))
    if team is None:
        raise NotFound(f"there is no team {name_or_id!r}; `cvgrade admin list-teams` lists them")
    return team


def list_teams(session: Session) -> list[tuple[Team, int, list[ApiKey]]]:
    """Every team, with how many invitations it has and its keys."""
    teams = list(session.scalars(select(Team).order_by(Team.id)))
    keys: dict[int, list[ApiKey]] = {team.id: [] for team in teams}
    for key in session.scalars(select(ApiKey).order_by(ApiKey.id)):
        keys[key.team_id].append(key)
    counts = dict(session.execute(
        select(Invitation.team_id, func.count()).group_by(Invitation.team_id)
    ).all())
    return [(team, counts.get(team.id, 0), keys[team.id]) for team in teams]


def authenticate_team(session: Session, token: str | None) -> TeamPrincipal:
    """The team behind an API key, or a 401 that says what is wrong with the key."""
    if not token:
        raise Unauthorized("this route needs your team's API key: send the header 'Authorization: Bearer <key>'")
    if kind_of(token) == "candidate":
        raise Unauthorized("this is a candidate's invitation token; team routes need an API key "
                           "(candidates use the routes under /api/v1/candidate)")
    key = session.scalar(select(ApiKey).options(joinedload(ApiKey.team))  # one query, not two
                         .where(ApiKey.token_sha256 == token_sha256(token)))
    if key is None:
        raise Unauthorized("this API key is not known; check that it was copied whole")
    if key.revoked_at is not None:
        raise Unauthorized(f"this API key ({key.prefix}...) was revoked; ask your administrator for a new one")
    return TeamPrincipal(team_id=key.team_id, team_name=key.team.name, key_id=key.id,
                         candidates_see_scores=key.team.candidates_see_scores)
