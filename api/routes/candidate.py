"""The candidate's routes (invitation token): the statement, the starter kit, uploads, feedback.

A token opens exactly one invitation: every query here filters by it, so a
candidate never reaches another candidate's submissions (404, as for ids that
do not exist). Reading the statement or the starter kit, or uploading, starts
the clock of a time box (as opening the candidate's page does).

The candidate's page (``api.routes.candidate_page``) shares what is here: the
invitation's view, the starter kit and receiving an upload.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.candidate_access import start_clock
from api.deps import Candidate, Id, ReadSession, ServiceDep
from api.invitations import CandidatePrincipal, attempts_used, uploads_close_at, uploads_closed_reason
from api.models import Invitation
from api.routes import errors
from api.schemas import CandidateChallenge, CandidateInvitation, CandidateSubmission, FunctionPublic
from api.service import Service
from api.submissions import accept_upload, candidate_submissions, check_idempotency_key, precheck_upload
from api.syntax import parse_error
from api.uploads import receive_upload
from grader.challenge import Challenge
from grader.errors import BadSubmission
from grader.practice import start_practice
from grader.workspace import prepare_workspace

router = APIRouter(prefix="/candidate", tags=["candidate"], responses=errors(401))


@router.get("", summary="Your invitation: the challenge, its statement and starter, your attempts")
def get_invitation(candidate: Candidate, service: ServiceDep) -> CandidateInvitation:
    started(service, candidate)
    with service.db.read() as session:
        return invitation_view(session, service, session.get_one(Invitation, candidate.invitation_id))


def started(service: Service, candidate: CandidatePrincipal) -> None:
    """The candidate looks at the challenge: a time box's clock starts now, if it has not yet."""
    with service.db.read() as session:
        if session.get_one(Invitation, candidate.invitation_id).started_at is not None:
            return
    with service.db.write() as session:
        start_clock(session, candidate.invitation_id, service.clock(), candidate.actor)
        session.commit()


def invitation_view(session: Session, service: Service, invitation: Invitation) -> CandidateInvitation:
    """What the candidate sees of their invitation: the challenge, its statement and starter, and where
    their attempts, deadline and time box stand."""
    challenge = service.challenge(invitation.challenge_id)
    used = attempts_used(session, [invitation.id])[invitation.id]
    spec = challenge.spec
    closed = uploads_closed_reason(invitation, used, service.clock())
    return CandidateInvitation(
        challenge=CandidateChallenge(
            id=challenge.id, version=challenge.version, title=spec.challenge.title, summary=spec.challenge.summary,
            functions=[FunctionPublic(name=f.name, parameters=list(f.parameters), signature=f.signature)
                       for f in spec.functions],
        ),
        statement=challenge.statement.read_text(encoding="utf-8"),
        starter={path.name: path.read_text(encoding="utf-8")
                 for path in sorted(challenge.starter_dir.iterdir()) if path.is_file()},
        deadline=invitation.deadline, max_attempts=invitation.max_attempts, attempts_used=used,
        attempts_left=max(0, invitation.max_attempts - used), submissions_open=closed is None,
        time_limit_minutes=invitation.time_limit_minutes, started_at=invitation.started_at,
        uploads_close_at=uploads_close_at(invitation), closed_reason=closed,
    )


@router.get("/starter-kit", response_class=Response, summary="The starter kit as a zip", responses={
    200: {"content": {"application/zip": {}},
          "description": "The statement, the starter files and the public checks (what `cvgrade start` writes)."}})
def get_starter_kit(candidate: Candidate, service: ServiceDep) -> Response:
    started(service, candidate)
    return starter_kit(service, candidate)


def starter_kit(service: Service, candidate: CandidatePrincipal) -> Response:
    with service.db.read() as session:
        challenge = service.challenge(session.get_one(Invitation, candidate.invitation_id).challenge_id)
    return Response(_starter_zip(challenge), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{challenge.id}-starter.zip"'})


def _starter_zip(challenge: Challenge) -> bytes:
    """What ``cvgrade start`` writes, zipped: the public parts only."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="cvgrade-kit-") as folder:
        root = Path(folder) / challenge.id
        written = start_practice(challenge, root)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, f"{challenge.id}/{path.relative_to(root)}")
    return buffer.getvalue()


@router.post(
    "/submissions", status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a submission (.py, .ipynb or .zip); it is queued for grading",
    description=(
        "Send the file as multipart/form-data in a part named `file`, or as the body with "
        "Content-Type: application/octet-stream and `?filename=`. A retry with the same `Idempotency-Key` "
        "answers 200 with the first upload's submission instead of making a second one."
    ),
    responses={200: {"model": CandidateSubmission, "description": "A retry: the earlier upload."},
               **errors(400, 403, 409, 413, 415, 422)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def post_submission(
    request: Request,
    response: Response,
    candidate: Candidate,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    filename: Annotated[str | None, Query(max_length=1000, description=(
        "The file's name, with an application/octet-stream body (a form carries its own)."))] = None,
) -> CandidateSubmission:
    del filename  # documented and checked here; receive_upload reads it with the body it names
    view, replayed = await receive_submission(request, service, candidate, idempotency_key)
    if replayed:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/candidate/submissions/{view.id}"
    return view


async def receive_submission(request: Request, service: Service, candidate: CandidatePrincipal,
                             idempotency_key: str | None) -> tuple[CandidateSubmission, bool]:
    """Receive, check and accept an upload (or raise the 4xx that says why not); return the submission's
    view and whether it is an earlier upload's (a retry with the same key)."""
    key = check_idempotency_key(idempotency_key)
    await run_in_threadpool(precheck_upload, service, candidate, key)
    await run_in_threadpool(started, service, candidate)
    settings = service.settings
    received = await receive_upload(request, settings.staging_dir, settings.max_upload_bytes)
    try:
        kind = await run_in_threadpool(_check_submission, received.path, settings.parse_check)
        accepted = await run_in_threadpool(accept_upload, service, candidate, received, kind, key)
    finally:
        received.discard()
    view = await run_in_threadpool(_one, service, candidate, accepted.submission.id)
    if not accepted.replayed:
        service.notify_runner()  # after the view: a new submission is answered as queued
    return view, accepted.replayed


def _check_submission(path: Path, parse_check: bool = True) -> str:
    """The grader's own checks (safe zip, valid notebook, sizes) and ours (not empty, parses: ``api.syntax``);
    raises ``BadSubmission`` (422: nothing is stored, no attempt is spent)."""
    if path.stat().st_size == 0:
        raise BadSubmission(f"{path.name} is empty (0 bytes); choose the file that holds your solution and upload "
                            "it again (this upload did not use an attempt)")
    workspace = prepare_workspace(path, work_root=path.parent)
    try:
        error = parse_error(workspace, path.name) if parse_check else None
    finally:
        workspace.cleanup()
    if error is not None:
        raise BadSubmission(error)
    return workspace.kind


def _one(service: ServiceDep, candidate: Candidate, submission_id: int) -> CandidateSubmission:
    with service.db.read() as session:
        return candidate_submissions(session, service, candidate, submission_id)[0]


@router.get("/submissions", summary="Your submissions and their feedback")
def list_submissions(candidate: Candidate, session: ReadSession, service: ServiceDep) -> list[CandidateSubmission]:
    return candidate_submissions(session, service, candidate)


@router.get("/submissions/{submission_id}", summary="One of your submissions: its state and feedback",
            responses=errors(404))
def get_submission(submission_id: Id, candidate: Candidate, session: ReadSession, service: ServiceDep
                   ) -> CandidateSubmission:
    return candidate_submissions(session, service, candidate, submission_id)[0]
