"""The team's view of submissions: lists with scores, full results in three formats, comparison."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.comparison import RankBy, compare, comparison_csv
from api.deps import PAGE_LIMIT, AfterId, Id, PageLimit, ReadSession, ServiceDep, Team
from api.errors import Conflict
from api.invitations import team_invitation
from api.routes import errors
from api.schemas import Comparison, SubmissionPublic
from api.similarity import refreshed
from api.submissions import team_result, team_result_json, team_submission, team_submissions
from grader.exports import gradescope_results, junit_xml

router = APIRouter(tags=["results"], responses=errors(401, 404))


def _paged(rows: list[SubmissionPublic], request: Request, response: Response, limit: int) -> list[SubmissionPublic]:
    """Say where the next page starts when this one is full (RFC 8288 ``Link``, as GitHub's API does)."""
    if len(rows) == limit:
        following = request.url.include_query_params(after_id=rows[-1].id, limit=limit)
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    return rows


@router.get("/invitations/{invitation_id}/submissions", summary="An invitation's submissions and scores, oldest first")
def invitation_submissions(invitation_id: Id, team: Team, session: ReadSession, request: Request, response: Response,
                           after_id: AfterId = None, limit: PageLimit = PAGE_LIMIT) -> list[SubmissionPublic]:
    team_invitation(session, team, invitation_id)  # 404 unless it is the team's
    rows = team_submissions(session, team, invitation_id=invitation_id, after_id=after_id, limit=limit)
    return _paged(rows, request, response, limit)


@router.get("/challenges/{challenge_id}/submissions", summary="A challenge's submissions and scores, oldest first")
def challenge_submissions(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep, request: Request,
                          response: Response, after_id: AfterId = None, limit: PageLimit = PAGE_LIMIT
                          ) -> list[SubmissionPublic]:
    service.challenge(challenge_id)
    rows = team_submissions(session, team, challenge_id=challenge_id, after_id=after_id, limit=limit)
    return _paged(rows, request, response, limit)


RankByQuery = Annotated[RankBy, Query(description=(
    "best: rank each candidate by their best graded submission (passed, then score, then earliest); "
    "latest: by their latest one."))]


@router.get("/challenges/{challenge_id}/comparison", summary="Candidates of a challenge side by side, ranked")
def challenge_comparison(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep,
                         rank_by: RankByQuery = "best") -> Comparison:
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    return compare(session, team, challenge, rank_by)


@router.get("/challenges/{challenge_id}/comparison.csv", response_class=Response,
            summary="The comparison as CSV, for a spreadsheet", responses={
                200: {"content": {"text/csv": {}}, "description": "One row per candidate; checks and metrics as "
                                                                  "columns, named in plain words."}})
def challenge_comparison_csv(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep,
                             rank_by: RankByQuery = "best") -> Response:
    challenge = service.challenge(challenge_id)
    refreshed(session, service, team.team_id, challenge)
    return csv_response(comparison_csv(compare(session, team, challenge, rank_by)), f"{challenge.id}-comparison.csv")


def csv_response(text: str, filename: str) -> Response:
    return Response(text.encode("utf-8-sig"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


@router.get("/submissions/{submission_id}", summary="One submission and where its grading stands")
def get_submission(submission_id: Id, team: Team, session: ReadSession) -> SubmissionPublic:
    return team_submission(session, team, submission_id)


_RESULT_DOC = {200: {"description": "The grader's result, as `cvgrade grade --json` prints it."},
               **errors(409)}


@router.get("/submissions/{submission_id}/result", responses=_RESULT_DOC,
            summary="The full result: every check, metric, limit and the machine that graded it")
def get_result(submission_id: Id, team: Team, session: ReadSession) -> Response:
    return Response(team_result_json(session, team, submission_id), media_type="application/json")


@router.get("/submissions/{submission_id}/result/gradescope", responses=errors(409),
            summary="The result as Gradescope's results.json")
def get_gradescope(submission_id: Id, team: Team, session: ReadSession) -> dict[str, object]:
    result = team_result(session, team, submission_id)
    try:
        return gradescope_results(result)
    except ValueError:
        raise Conflict(f"submission {submission_id} was not gradable ({result.error}); "
                       "it has no score to export") from None


@router.get("/submissions/{submission_id}/result/junit", response_class=Response, responses={
    200: {"content": {"application/xml": {}}, "description": "JUnit XML, one test case per check."}, **errors(409)},
    summary="The result as JUnit XML")
def get_junit(submission_id: Id, team: Team, session: ReadSession) -> Response:
    result = team_result(session, team, submission_id)
    return Response(junit_xml(result), media_type="application/xml")
