"""The team's routes for running a round: change or bulk-create invitations, re-grade, notes and
decisions (API key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from api.bulk_invitations import parse_invitations
from api.candidate_access import candidate_url
from api.deps import Id, ReadSession, ServiceDep, Team, WriteSession, json_body
from api.errors import ApiError, UnsupportedMediaType
from api.invitations import attempts_used, create_invitation, same_candidate, update_invitation
from api.invitations import to_public as invitation_public
from api.regrade import past_result_body, regrade, result_versions
from api.review import add_note, decide, decisions, notes
from api.round_schemas import DecisionCreate, DecisionPublic, NoteCreate, NotePublic, Regraded, ResultVersionPublic
from api.routes import errors
from api.schemas import InvitationCreate, InvitationCreated, InvitationPublic, InvitationUpdate
from api.service import Service
from api.submissions import team_result_json, team_submission
from api.teams import TeamPrincipal

router = APIRouter(tags=["review"], responses=errors(401))


@router.patch("/invitations/{invitation_id}", dependencies=[Depends(json_body)],
              summary="Move an invitation's deadline or change its attempt budget",
              responses=errors(400, 404, 409, 415, 422))
def patch_invitation(invitation_id: Id, body: InvitationUpdate, team: Team, session: WriteSession,
                     service: ServiceDep, request: Request) -> InvitationPublic:
    invitation = update_invitation(session, team, invitation_id, body, service.clock())
    session.commit()
    return invitation_public(invitation, attempts_used=attempts_used(session, [invitation.id])[invitation.id],
                             same_candidate_as=same_candidate(session, [invitation])[invitation.id],
                             candidate_url=candidate_url(service.secret_key, invitation,
                                                         service.settings.base_url(str(request.base_url))))


_CSV_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {
    "type": "string", "example": "candidate,challenge_id,deadline,max_attempts\n"
                                 "ada@example.com,iou,2030-06-01T17:00:00Z,3\n"}}}}}


@router.post("/bulk-invitations", status_code=status.HTTP_201_CREATED, openapi_extra=_CSV_DOC,
             summary="Invite many candidates from a CSV file; the answer holds their tokens, shown this once",
             description=(
                 "Columns: candidate (or email), and optionally challenge_id, deadline, max_attempts, expires_at; "
                 "a missing column or an empty cell takes the query parameter of the same name. Every row is "
                 "checked first: one bad row refuses the whole file (422, with line numbers)."),
             responses=errors(400, 404, 413, 415, 422))
async def post_bulk_invitations(
    request: Request, team: Team, service: ServiceDep,
    challenge_id: Annotated[str | None, Query(max_length=100, description="For rows that give none.")] = None,
    deadline: Annotated[str | None, Query(max_length=64, description="For rows that give none (ISO 8601).")] = None,
    max_attempts: Annotated[int | None, Query(ge=1, le=100, description="For rows that give none.")] = None,
) -> list[InvitationCreated]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "text/plain"):
        raise UnsupportedMediaType("send the CSV as the body with Content-Type: text/csv")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("the CSV is not UTF-8 text; save it as 'CSV UTF-8'") from None
    bodies = parse_invitations(text, {"challenge_id": challenge_id, "deadline": deadline,
                                      "max_attempts": max_attempts})
    return await run_in_threadpool(create_many, service, team, bodies, str(request.base_url))


def create_many(service: Service, team: TeamPrincipal, bodies: list[InvitationCreate], request_base: str
                ) -> list[InvitationCreated]:
    """All the invitations in one transaction, or none; each with its token and link, shown this once."""
    challenges = {challenge_id: service.challenge(challenge_id) for challenge_id in {b.challenge_id for b in bodies}}
    now, base = service.clock(), service.settings.base_url(request_base)
    with service.db.write() as session:
        created = [create_invitation(session, team, body, challenges[body.challenge_id], now,
                                     server_key=service.secret_key) for body in bodies]
        session.commit()
        # The same candidate twice within the file is flagged too (each was created before the next existed).
        same = same_candidate(session, [invitation for invitation, _ in created])
        return [InvitationCreated(**invitation_public(
            invitation, attempts_used=0, same_candidate_as=same[invitation.id],
            candidate_url=candidate_url(service.secret_key, invitation, base)).model_dump(), token=token)
            for invitation, token in created]


@router.post("/submissions/{submission_id}/regrade", status_code=status.HTTP_202_ACCEPTED,
             summary="Grade a submission again: a new result version (the current one is kept)",
             description=("The submission is graded against the challenge as it is now. The candidate's attempts "
                          "are not touched; the re-grade is in the audit log."),
             responses=errors(404, 409))
def post_regrade(submission_id: Id, team: Team, session: WriteSession, service: ServiceDep) -> Regraded:
    challenge_id = team_submission(session, team, submission_id).challenge_id
    challenge = service.challenge(challenge_id)
    next_version = regrade(session, team, submission_id, challenge, service.clock())
    session.commit()
    service.notify_runner()
    return Regraded(submission=team_submission(session, team, submission_id), next_version=next_version)


@router.get("/submissions/{submission_id}/results", summary="Every result version of a submission, oldest first",
            responses=errors(404))
def get_result_versions(submission_id: Id, team: Team, session: ReadSession) -> list[ResultVersionPublic]:
    return result_versions(session, team, submission_id)


@router.get("/submissions/{submission_id}/results/{version}", responses=errors(404, 409),
            summary="One result version in full (the current one is also at .../result)")
def get_result_version(submission_id: Id, version: Id, team: Team, session: ReadSession) -> dict[str, Any]:
    versions = result_versions(session, team, submission_id)
    if versions and versions[-1].current and versions[-1].version == version:
        import json

        loaded: dict[str, Any] = json.loads(team_result_json(session, team, submission_id))
        return loaded
    return past_result_body(session, team, submission_id, version)


@router.get("/submissions/{submission_id}/notes", summary="The team's notes on a submission, oldest first",
            responses=errors(404))
def get_notes(submission_id: Id, team: Team, session: ReadSession) -> list[NotePublic]:
    return notes(session, team, submission_id=submission_id)


@router.post("/submissions/{submission_id}/notes", status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(json_body)], summary="Add a note to a submission (never shown to the candidate)",
             responses=errors(400, 404, 415, 422))
def post_note(submission_id: Id, body: NoteCreate, team: Team, session: WriteSession, service: ServiceDep
              ) -> NotePublic:
    note = add_note(session, team, submission_id, body, service.clock())
    session.commit()
    return note


@router.get("/invitations/{invitation_id}/decisions", responses=errors(404),
            summary="The decisions on a candidate, oldest first (the last one is current)")
def get_decisions(invitation_id: Id, team: Team, session: ReadSession) -> list[DecisionPublic]:
    return decisions(session, team, invitation_id)


@router.post("/invitations/{invitation_id}/decisions", status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(json_body)], summary="Decide on a candidate: advance, hold or reject",
             responses=errors(400, 404, 415, 422))
def post_decision(invitation_id: Id, body: DecisionCreate, team: Team, session: WriteSession, service: ServiceDep
                  ) -> DecisionPublic:
    decision = decide(session, team, invitation_id, body, service.clock())
    session.commit()
    return decision
