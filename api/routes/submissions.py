"""The team's view of submissions: lists with scores, full results in three formats, comparison."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Id, ReadSession, ServiceDep, Team
from api.errors import Conflict
from api.invitations import team_invitation
from api.routes import errors
from api.schemas import Comparison, SubmissionPublic
from api.submissions import compare, team_result, team_result_json, team_submission, team_submissions
from grader.exports import gradescope_results, junit_xml

router = APIRouter(tags=["results"], responses=errors(401, 404))


@router.get("/invitations/{invitation_id}/submissions", summary="An invitation's submissions, with scores")
def invitation_submissions(invitation_id: Id, team: Team, session: ReadSession) -> list[SubmissionPublic]:
    team_invitation(session, team, invitation_id)  # 404 unless it is the team's
    return team_submissions(session, team, invitation_id=invitation_id)


@router.get("/challenges/{challenge_id}/submissions", summary="Every submission to a challenge, with scores")
def challenge_submissions(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep
                          ) -> list[SubmissionPublic]:
    service.challenge(challenge_id)
    return team_submissions(session, team, challenge_id=challenge_id)


@router.get("/challenges/{challenge_id}/comparison", summary="Candidates of a challenge side by side, ranked")
def challenge_comparison(challenge_id: str, team: Team, session: ReadSession, service: ServiceDep) -> Comparison:
    challenge = service.challenge(challenge_id)
    return compare(session, team, challenge.id, [check.name for check in challenge.spec.checks])


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
