"""The team's routes to read candidates' code and see copies: a submission's files, its original
upload, its similarity to other submissions and to known public solutions (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api.copies import challenge_similarity, pair, submission_similarity
from api.deps import Id, ReadSession, ServiceDep, Team, WriteSession
from api.known_solutions import add_known_solution, known_solutions, remove_known_solution
from api.round_schemas import (
    ChallengeSimilarity,
    KnownSolutionPublic,
    MatchedRegion,
    PairDetail,
    SimilarityPublic,
    SubmissionFiles,
)
from api.routes import errors
from api.similarity import refresh, refreshed, side
from api.sources import download, files_public, stored_submission, submission_sources
from api.uploads import receive_upload
from grader.similarity import regions

router = APIRouter(tags=["code"], responses=errors(401))


@router.get("/submissions/{submission_id}/files", responses=errors(404),
            summary="A submission's source: each file's text, a notebook's cells and outputs, a zip's tree")
def get_files(submission_id: Id, team: Team, session: ReadSession, service: ServiceDep) -> SubmissionFiles:
    stored = stored_submission(session, team, submission_id)
    return files_public(stored, submission_sources(service, stored))


@router.get("/submissions/{submission_id}/upload", response_class=Response, summary="The original upload, to save",
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "The bytes as uploaded (sent as an attachment)."}, **errors(404)})
def get_upload(submission_id: Id, team: Team, session: ReadSession, service: ServiceDep) -> Response:
    return download(service, stored_submission(session, team, submission_id))


@router.get("/challenges/{challenge_id}/similarity", responses=errors(404),
            summary="Copies among a challenge's submissions: pairs sharing code, and resemblance to the reference")
def get_challenge_similarity(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep
                             ) -> ChallengeSimilarity:
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    return challenge_similarity(session, team, challenge.id)


@router.get("/submissions/{submission_id}/similarity", responses=errors(404),
            summary="Other candidates' submissions (and known solutions) that share code with this one")
def get_submission_similarity(submission_id: Id, team: Team, session: ReadSession, service: ServiceDep
                              ) -> list[SimilarityPublic]:
    stored = stored_submission(session, team, submission_id)
    refreshed(session, service, team.team_id, service.challenge(stored.challenge_id))
    return submission_similarity(session, team, submission_id)


@router.get("/submissions/{submission_id}/similarity/{other_id}", responses=errors(404),
            summary="Two submissions side by side: how much they share, and the matching line ranges")
def get_pair(submission_id: Id, other_id: Id, team: Team, session: ReadSession, service: ServiceDep) -> PairDetail:
    first = stored_submission(session, team, submission_id)
    second = stored_submission(session, team, other_id)
    challenge = service.challenge(first.challenge_id)
    refreshed(session, service, team.team_id, challenge)
    found = pair(session, team, submission_id, other_id)
    with service.store.local_path(first.store_key) as a, service.store.local_path(second.store_key) as b:
        left = side(a.read_bytes(), first.filename, first.kind, challenge)
        right = side(b.read_bytes(), second.filename, second.kind, challenge)
    return PairDetail(similarity=found, regions=[
        MatchedRegion(number=region.number, file=left.units[region.a.unit][0], first_line=region.a.first,
                      last_line=region.a.last, other_file=right.units[region.b.unit][0],
                      other_first_line=region.b.first, other_last_line=region.b.last,
                      fingerprints=region.fingerprints)
        for region in regions(left.fingerprint, right.fingerprint)])


@router.get("/challenges/{challenge_id}/known-solutions", responses=errors(404),
            summary="Your known public solutions to a challenge")
def get_known_solutions(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep
                        ) -> list[KnownSolutionPublic]:
    return known_solutions(session, team, service.challenge(challenge_id).id)


@router.post("/challenges/{challenge_id}/known-solutions", status_code=status.HTTP_201_CREATED,
             summary="Add a known public solution: submissions copied from it are flagged with it as the source",
             description=("Send the file (.py, .ipynb or .zip) as multipart/form-data in a part named `file`, or as "
                          "the body with Content-Type: application/octet-stream and `?filename=`."),
             openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                     "file": {"type": "string", "format": "binary"}}}},
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
             responses=errors(400, 404, 413, 415, 422))
async def post_known_solution(
    challenge_id: str, request: Request, team: Team, service: ServiceDep,
    label: Annotated[str, Query(min_length=1, max_length=200, description="Where it comes from.")],
    source_url: Annotated[str, Query(max_length=2000, description="Its address, if it has one.")] = "",
    filename: Annotated[str | None, Query(max_length=1000, description=(
        "The file's name, with an application/octet-stream body."))] = None,
) -> KnownSolutionPublic:
    del filename  # read by receive_upload with the body it names
    challenge = service.challenge(challenge_id)
    received = await receive_upload(request, service.settings.staging_dir, service.settings.max_json_bytes)
    try:
        await run_in_threadpool(refresh, service, team.team_id, challenge)
        return await run_in_threadpool(add_known_solution, service, team, challenge, received, label, source_url)
    finally:
        received.discard()


@router.delete("/challenges/{challenge_id}/known-solutions/{solution_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, summary="Remove a known solution (and its matches)", responses=errors(404))
def delete_known_solution(challenge_id: str, solution_id: Id, team: Team, session: WriteSession,
                          service: ServiceDep) -> Response:
    remove_known_solution(session, team, challenge_id, solution_id, service.clock())
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
