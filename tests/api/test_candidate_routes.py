"""The candidate's side: the statement and starter, uploads (idempotent, budgeted, before the
deadline), following the job, and feedback that obeys each check's visibility."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from api.errors import Forbidden
from api.invitations import CandidatePrincipal
from api.models import Invitation
from api.submissions import accept_upload
from api.uploads import ReceivedFile

if TYPE_CHECKING:
    from conftest import Api, Candidate


def test_the_candidate_sees_the_statement_the_starter_and_their_attempts(api: Api) -> None:
    candidate = api.team().invite(max_attempts=2)
    view = candidate.get("").json()
    assert view["challenge"]["id"] == "tiny" and view["statement"] == "# Tiny\n"
    assert view["starter"] == {"solution.py": "def add(a, b):\n    raise NotImplementedError\n"}
    assert (view["max_attempts"], view["attempts_used"], view["attempts_left"], view["submissions_open"]) == (
        2, 0, 2, True)
    assert "HIDDEN" not in json.dumps(view) and "return a + b" not in json.dumps(view)


def test_the_starter_kit_holds_the_public_parts_and_nothing_hidden(api: Api) -> None:
    kit = api.team().invite().get("/starter-kit")
    assert kit.status_code == 200 and kit.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(kit.content)).namelist()
    assert sorted(names) == ["tiny/.cvgrade.toml", "tiny/README.md", "tiny/solution.py"]


def test_an_upload_is_queued_graded_and_followed_to_its_feedback(api: Api) -> None:
    candidate = api.team().invite()
    response = candidate.upload("def add(a, b):\n    return a + b\n# pass:all\n")
    assert response.status_code == 202, response.text
    submission = response.json()
    assert response.headers["location"] == f"/api/v1/candidate/submissions/{submission['id']}"
    assert (submission["filename"], submission["kind"]) == ("solution.py", "py")
    assert submission["state"] in ("queued", "running")  # an idle worker may take it before the answer is read
    api.wait_for_jobs()
    followed = candidate.get(f"/submissions/{submission['id']}").json()
    assert (followed["state"], followed["message"], followed["feedback"]["status"]) == ("done", "Graded.", "graded")
    assert api.grader.calls == ["solution.py"]


def test_raw_octet_stream_uploads_work_like_forms(api: Api) -> None:
    candidate = api.team().invite()
    response = api.client.post("/api/v1/candidate/submissions", params={"filename": "../../my solution.py"},
                               content=b"pass:all", headers=dict(candidate.headers,
                                                                 **{"Content-Type": "application/octet-stream"}))
    assert response.status_code == 202, response.text
    assert response.json()["filename"] == "my_solution.py"  # only a safe base name is kept


def test_notebooks_and_zips_are_accepted(api: Api) -> None:
    candidate = api.team().invite(max_attempts=5)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def add(a, b):\n    return a + b")])
    assert candidate.upload(nbformat.writes(notebook), name="work.ipynb").json()["kind"] == "ipynb"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("project/solution.py", "def add(a, b):\n    return a + b\n")
    assert candidate.upload(archive.getvalue(), name="project.zip").json()["kind"] == "zip"


def test_a_retried_upload_with_the_same_idempotency_key_makes_one_submission(api: Api) -> None:
    candidate = api.team().invite(max_attempts=1)
    first = candidate.upload("pass:all", key="retry-me")
    again = candidate.upload("pass:all", key="retry-me")  # also after the budget is spent
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(candidate.get("/submissions").json()) == 1 and api.stored_files() == 1
    other = candidate.upload("something else", key="retry-me")
    assert other.status_code == 409 and "different file" in other.json()["error"]


def test_the_attempt_budget_is_enforced_before_the_file_is_read(api: Api) -> None:
    candidate = api.team().invite(max_attempts=2)
    assert candidate.upload("pass:all").status_code == 202
    assert candidate.upload("pass:adds").status_code == 202
    third = candidate.upload("pass:later")
    assert third.status_code == 403
    assert third.json()["error"].startswith("all 2 attempts of this invitation are used")
    assert len(candidate.get("/submissions").json()) == 2 and api.stored_files() == 2


def test_a_not_gradable_grading_does_not_cost_an_attempt(api: Api) -> None:
    candidate = api.team().invite(max_attempts=1)
    submission = candidate.upload("INFRASTRUCTURE").json()
    api.wait_for_jobs()
    view = candidate.get(f"/submissions/{submission['id']}").json()
    assert (view["state"], view["charged"], view["attempts_left"]) == ("not_gradable", False, 1)
    assert view["feedback"]["summary"].startswith("Not gradable: something on our side failed")
    assert "sandbox could not start" not in json.dumps(view)  # our machine's trouble stays with the team
    assert candidate.upload("pass:all").status_code == 202  # the one attempt is still there


def test_a_failure_of_the_service_itself_does_not_cost_an_attempt_either(api: Api) -> None:
    candidate = api.team().invite(max_attempts=1)
    candidate.upload("BUG")
    api.wait_for_jobs()
    [view] = candidate.get("/submissions").json()
    assert (view["state"], view["charged"]) == ("not_gradable", False)


def test_a_submission_the_grader_refuses_costs_an_attempt_and_says_why(api: Api) -> None:
    candidate = api.team().invite(max_attempts=2)
    candidate.upload("REFUSE")
    api.wait_for_jobs()
    [view] = candidate.get("/submissions").json()
    assert (view["state"], view["charged"], view["attempts_left"]) == ("failed", True, 1)
    assert view["message"] == "Could not be graded: solution.py: the grader refuses this submission"


def test_uploads_close_at_the_deadline_but_feedback_stays_readable(api: Api) -> None:
    candidate = api.team().invite()
    candidate.upload("pass:all")
    api.wait_for_jobs()
    api.clock.advance(days=7)
    late = candidate.upload("pass:all")
    assert late.status_code == 403 and "deadline for this invitation passed at 2030-01-08 12:00:00 UTC" in \
        late.json()["error"]
    assert candidate.get("").json()["submissions_open"] is False
    assert len(candidate.get("/submissions").json()) == 1 and api.stored_files() == 1


def test_the_token_expires_after_its_time(api: Api) -> None:
    candidate = api.team().invite()
    api.clock.advance(days=7 + 30)
    expired = candidate.get("")
    assert expired.status_code == 401
    assert expired.json() == {"error": "this invitation expired at 2030-02-07 12:00:00 UTC"}


def test_hidden_checks_show_only_pass_or_fail_and_the_kind_of_failure(api: Api) -> None:
    candidate = api.team().invite()
    candidate.upload("pass:adds")
    api.wait_for_jobs()
    [view] = candidate.get("/submissions").json()
    checks = {check["name"]: check for check in view["feedback"]["checks"]}
    assert checks["adds"] == {"name": "adds", "status": "passed", "message": "passed",
                              "description": "add(1, 2) is 3", "score": None, "max_score": None}
    assert checks["secret"] == {"name": "secret", "status": "failed", "message": "the solution raised an exception",
                                "description": None, "score": None, "max_score": None}
    assert checks["later"]["message"] == "the solution raised an exception"  # hidden until the deadline
    text = json.dumps(view)
    for secret in ("SECRET_EXPECTED", "HIDDEN DESCRIPTION", "HIDDEN_SOURCE_MARKER", "sandbox: a note"):
        assert secret not in text
    assert view["feedback"]["notes"] == ["a note for the candidate"]
    assert (view["feedback"]["score"], view["feedback"]["passed"]) == (None, None)  # the team's default
    assert view["feedback"]["summary"] == "1 of 3 checks passed."


def test_after_the_deadline_after_due_date_checks_show_their_message(api: Api) -> None:
    candidate = api.team().invite()
    candidate.upload("pass:adds")
    api.wait_for_jobs()
    api.clock.advance(days=8)
    [view] = candidate.get("/submissions").json()
    checks = {check["name"]: check for check in view["feedback"]["checks"]}
    assert checks["later"]["message"] == "later: expected SECRET_EXPECTED_later"
    assert checks["secret"]["message"] == "the solution raised an exception"  # hidden stays hidden


def test_candidates_see_scores_when_their_team_allows_it(api: Api) -> None:
    team = api.team()
    api.client.patch("/api/v1/team", headers=team.headers, json={"candidates_see_scores": True})
    candidate = team.invite()
    candidate.upload("pass:adds")
    api.wait_for_jobs()
    [view] = candidate.get("/submissions").json()
    feedback = view["feedback"]
    assert (feedback["score"], feedback["max_score"], feedback["passed"]) == (6, 10, True)
    assert feedback["summary"].startswith("1 of 3 checks passed, score 6 / 10.")
    assert {check["name"]: check["score"] for check in feedback["checks"]} == {"adds": 6, "secret": 0, "later": 0}


def _received(api: Api, name: str, content: bytes) -> ReceivedFile:
    folder = Path(tempfile.mkdtemp(dir=api.service.settings.staging_dir))
    (folder / name).write_bytes(content)
    return ReceivedFile(folder, folder / name, name, hashlib.sha256(content).hexdigest(), len(content))


def _race(api: Api, candidate: Candidate, uploads: list[tuple[bytes, str | None]]) -> list[str]:
    """Accept ``uploads`` at once, from as many threads; return what became of each."""
    with api.service.db.read() as session:
        principal = CandidatePrincipal(candidate.invitation["id"], session.get_one(Invitation, 1).team_id)
    barrier = threading.Barrier(len(uploads))

    def one(content: bytes, key: str | None) -> str:
        received = _received(api, "solution.py", content)
        barrier.wait()
        try:
            accepted = accept_upload(api.service, principal, received, "py", key)
            return "replayed" if accepted.replayed else "accepted"
        except Forbidden:
            return "refused"
        finally:
            received.discard()

    with ThreadPoolExecutor(len(uploads)) as pool:
        return sorted(pool.map(lambda upload: one(*upload), uploads))


def test_uploads_at_the_same_moment_never_overspend_the_budget(api: Api) -> None:
    candidate = api.team().invite(max_attempts=2)
    outcomes = _race(api, candidate, [(f"pass:all {number}".encode(), None) for number in range(6)])
    assert outcomes == ["accepted"] * 2 + ["refused"] * 4
    assert len(candidate.get("/submissions").json()) == 2


def test_retries_at_the_same_moment_make_one_submission(api: Api) -> None:
    candidate = api.team().invite(max_attempts=3)
    outcomes = _race(api, candidate, [(b"pass:all", "one-key")] * 5)
    assert outcomes == ["accepted"] + ["replayed"] * 4
    assert len(candidate.get("/submissions").json()) == 1
