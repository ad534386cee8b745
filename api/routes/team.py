"""The team's routes (API key): its settings, challenges, invitations and audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from api import audit
from api.candidate_access import candidate_url
from api.deps import BeforeId, Id, ReadSession, ServiceDep, Team, WriteSession, json_body
from api.invitations import (
    attempts_used,
    create_invitation,
    revoke_invitation,
    same_candidate,
    team_invitation,
    team_invitations,
)
from api.invitations import to_public as invitation_public
from api.models import Invitation
from api.models import Team as TeamRow
from api.routes import errors
from api.schemas import (
    AuditEventPublic,
    ChallengeDetail,
    ChallengePublic,
    CheckPublic,
    FunctionPublic,
    InvitationCreate,
    InvitationCreated,
    InvitationPublic,
    TeamPublic,
    TeamUpdate,
)
from api.service import Service
from grader.challenge import Challenge

router = APIRouter(tags=["team"], responses=errors(401))


@router.get("/team", summary="Your team and its settings")
def get_team(team: Team, session: ReadSession) -> TeamPublic:
    row = session.get_one(TeamRow, team.team_id)
    return TeamPublic(id=row.id, name=row.name, candidates_see_scores=row.candidates_see_scores)


@router.patch("/team", summary="Change your team's settings", dependencies=[Depends(json_body)],
              responses=errors(400, 415, 422))
def update_team(body: TeamUpdate, team: Team, session: WriteSession, service: ServiceDep) -> TeamPublic:
    row = session.get_one(TeamRow, team.team_id)
    if row.candidates_see_scores != body.candidates_see_scores:
        row.candidates_see_scores = body.candidates_see_scores
        audit.record(session, team_id=team.team_id, actor=team.actor, action="team.updated",
                     subject=f"team {team.team_id}", now=service.clock(),
                     candidates_see_scores=body.candidates_see_scores)
    session.commit()
    return TeamPublic(id=row.id, name=row.name, candidates_see_scores=row.candidates_see_scores)


def challenge_public(challenge: Challenge) -> ChallengePublic:
    """A challenge's metadata: never its hidden checks' source, reference or data."""
    spec = challenge.spec
    return ChallengePublic(
        id=challenge.id, version=challenge.version, title=spec.challenge.title, level=spec.challenge.level,
        summary=spec.challenge.summary, pass_mark=spec.challenge.pass_mark, max_score=challenge.max_score,
        functions=[FunctionPublic(name=f.name, parameters=list(f.parameters), signature=f.signature)
                   for f in spec.functions],
        checks=[CheckPublic(name=c.name, points=c.points, gate=c.gate, timed=c.timed, visibility=c.visibility,
                            description=c.description) for c in spec.checks],
    )


@router.get("/challenges", summary="The challenges you can invite candidates to")
def list_challenges(_team: Team, service: ServiceDep) -> list[ChallengePublic]:
    return [challenge_public(challenge) for challenge in service.challenges()]


@router.get("/challenges/{challenge_id}", summary="One challenge, with its statement", responses=errors(404))
def get_challenge(challenge_id: str, _team: Team, service: ServiceDep) -> ChallengeDetail:
    challenge = service.challenge(challenge_id)
    statement = challenge.statement.read_text(encoding="utf-8")
    return ChallengeDetail(**challenge_public(challenge).model_dump(), statement=statement)


@router.post("/invitations", status_code=status.HTTP_201_CREATED, dependencies=[Depends(json_body)],
             summary="Invite a candidate; the answer holds their token, shown this once",
             responses=errors(400, 404, 415, 422))
def post_invitation(
    body: InvitationCreate, team: Team, session: WriteSession, service: ServiceDep, request: Request
) -> InvitationCreated:
    challenge = service.challenge(body.challenge_id)
    invitation, token = create_invitation(session, team, body, challenge, service.clock(),
                                          server_key=service.secret_key)
    session.commit()
    public = invitation_public(invitation, attempts_used=0, candidate_url=link(service, invitation, request),
                               same_candidate_as=same_candidate(session, [invitation])[invitation.id])
    return InvitationCreated(**public.model_dump(), token=token)


def link(service: Service, invitation: Invitation, request: Request) -> str | None:
    """The invitation's candidate_url, from the configured public URL (else the address this request came to)."""
    return candidate_url(service.secret_key, invitation, service.settings.base_url(str(request.base_url)))


@router.get("/invitations", summary="Your team's invitations")
def list_invitations(
    team: Team, session: ReadSession, service: ServiceDep, request: Request,
    challenge_id: Annotated[str | None, Query(description="Only this challenge's.")] = None,
) -> list[InvitationPublic]:
    invitations = team_invitations(session, team, challenge_id)
    used = attempts_used(session, [invitation.id for invitation in invitations])
    same = same_candidate(session, invitations)
    return [invitation_public(invitation, attempts_used=used[invitation.id], same_candidate_as=same[invitation.id],
                              candidate_url=link(service, invitation, request)) for invitation in invitations]


@router.get("/invitations/{invitation_id}", summary="One invitation", responses=errors(404))
def get_invitation(invitation_id: Id, team: Team, session: ReadSession, service: ServiceDep, request: Request
                   ) -> InvitationPublic:
    invitation = team_invitation(session, team, invitation_id)
    return invitation_public(invitation, attempts_used=attempts_used(session, [invitation.id])[invitation.id],
                             same_candidate_as=same_candidate(session, [invitation])[invitation.id],
                             candidate_url=link(service, invitation, request))


@router.post("/invitations/{invitation_id}/revoke", responses=errors(404),
             summary="Withdraw an invitation: its token stops working at once (its submissions stay)")
def post_revoke(invitation_id: Id, team: Team, session: WriteSession, service: ServiceDep) -> InvitationPublic:
    invitation = revoke_invitation(session, team, invitation_id, service.clock())
    session.commit()
    return invitation_public(invitation, attempts_used=attempts_used(session, [invitation.id])[invitation.id],
                             same_candidate_as=same_candidate(session, [invitation])[invitation.id])


@router.get("/audit-events", summary="Who did what in your team, newest first")
def list_audit_events(
    team: Team, session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: BeforeId = None,
) -> list[AuditEventPublic]:
    return [
        AuditEventPublic(id=event.id, actor=event.actor, action=event.action, subject=event.subject,
                         detail=event.detail, created_at=event.created_at)
        for event in audit.team_events(session, team.team_id, limit=limit, before_id=before_id)
    ]
