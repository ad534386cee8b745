"""Running a round through the API, on SQLite and PostgreSQL: the team reads a submission's code and
downloads its upload, sees copies between candidates (and from known public solutions), changes and
bulk-creates invitations, re-grades with the old result kept, writes notes and decisions, and compares
candidates by their best or latest submission, also as CSV. Copies: ``test_similarity_routes.py``."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from api.models import AuditEvent

if TYPE_CHECKING:
    from conftest import Api, TeamClient


def actions(api: Api) -> list[str]:
    with api.service.db.read() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# -- the code -----------------------------------------------------------------------------------

def test_the_team_reads_the_source_and_downloads_the_upload_as_an_attachment(api: Api) -> None:
    team = api.team()
    content = "def add(a, b):\n    return a + b  # <script>alert(1)</script>\n"
    submission = team.invite().upload(content, name="my solution.py").json()["id"]
    files = team.get(f"/submissions/{submission}/files").json()
    assert files["entry"] == "my_solution.py" and files["kind"] == "py"
    assert files["files"] == [{"path": "my_solution.py", "size_bytes": len(content), "language": "python",
                               "text": content, "truncated": False, "cells": None, "note": ""}]
    download = team.get(f"/submissions/{submission}/upload")
    assert download.status_code == 200 and download.content == content.encode()
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == f'attachment; filename="submission-{submission}-my_solution.py"'
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]


def test_another_team_never_reads_the_code(api: Api) -> None:
    a, b = api.team("a"), api.team("b")
    submission = a.invite().upload("SECRET_CODE = 1").json()["id"]
    for path in (f"/submissions/{submission}/files", f"/submissions/{submission}/upload",
                 f"/submissions/{submission}/similarity", f"/submissions/{submission}/notes",
                 f"/submissions/{submission}/results"):
        response = b.get(path)
        assert response.status_code == 404 and "SECRET_CODE" not in response.text, path
    assert b.post(f"/submissions/{submission}/regrade").status_code == 404
    assert b.post(f"/submissions/{submission}/notes", json={"body": "x"}).status_code == 404


def test_a_notebooks_html_output_comes_back_as_text(api: Api) -> None:
    team = api.team()
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{
        "cell_type": "code", "execution_count": 1, "metadata": {}, "id": "a",
        "source": "def add(a, b):\n    return a + b\n",
        "outputs": [{"output_type": "display_data", "metadata": {},
                     "data": {"text/html": "<script>alert(1)</script>"}}]}]}
    submission = team.invite().upload(json.dumps(notebook), name="solution.ipynb").json()["id"]
    cell = team.get(f"/submissions/{submission}/files").json()["files"][0]["cells"][0]
    assert cell["source"].startswith("def add") and cell["outputs"] == [{
        "kind": "result", "mime": "text/html", "text": "<script>alert(1)</script>", "image_base64": None,
        "truncated": False}]


# -- invitations --------------------------------------------------------------------------------

def test_a_team_moves_the_deadline_and_changes_the_budget(api: Api) -> None:
    team = api.team()
    candidate = team.invite(max_attempts=1)
    candidate.upload("pass:all")
    api.wait_for_jobs()
    assert candidate.upload("pass:all").status_code == 403
    later = (api.clock() + timedelta(days=60)).isoformat()
    changed = api.client.patch(f"/api/v1/invitations/{candidate.invitation['id']}", headers=team.headers,
                               json={"deadline": later, "max_attempts": 2})
    assert changed.status_code == 200, changed.text
    assert changed.json()["max_attempts"] == 2 and changed.json()["deadline"].startswith(later[:19])
    assert candidate.upload("pass:all").status_code == 202
    assert "invitation.updated" in actions(api)
    past = api.client.patch(f"/api/v1/invitations/{candidate.invitation['id']}", headers=team.headers,
                            json={"deadline": (api.clock() - timedelta(days=1)).isoformat()})
    assert past.status_code == 400 and "already passed" in past.json()["error"]
    team.post(f"/invitations/{candidate.invitation['id']}/revoke")
    revoked = api.client.patch(f"/api/v1/invitations/{candidate.invitation['id']}", headers=team.headers,
                               json={"max_attempts": 5})
    assert revoked.status_code == 409


def post_csv(team: TeamClient, body: str, content_type: str = "text/csv", **params: str) -> Any:
    return team.api.client.post("/api/v1/bulk-invitations", params=params, content=body.encode(),
                                headers={**team.headers, "Content-Type": content_type})


def test_bulk_invitations_from_csv_are_all_created_or_none(api: Api) -> None:
    team = api.team()
    deadline = (api.clock() + timedelta(days=7)).isoformat()
    body = "email,max_attempts,time_limit_minutes\nada@example.com,2,90\nbob@example.com,,\nAda+second@Example.com,1,\n"
    created = post_csv(team, body, challenge_id="tiny", deadline=deadline)
    assert created.status_code == 201, created.text
    rows = created.json()
    assert [(row["candidate"], row["max_attempts"]) for row in rows] == [
        ("ada@example.com", 2), ("bob@example.com", 3), ("Ada+second@Example.com", 1)]
    assert all(row["token"].startswith("cvgi_") for row in rows)
    assert [row["time_limit_minutes"] for row in rows] == [90, None, None]
    assert rows[0]["same_candidate_as"] == [rows[2]["id"]] and rows[2]["same_candidate_as"] == [rows[0]["id"]]
    bad = "candidate,max_attempts\ncid@example.com,2\ndan@example.com,many\n,3\n"
    refused = post_csv(team, bad, challenge_id="tiny", deadline=deadline)
    assert refused.status_code == 422
    assert "line 3: max_attempts" in refused.json()["error"] and "line 4: candidate" in refused.json()["error"]
    assert len(team.get("/invitations").json()) == 3  # nothing of the refused file
    wrong_type = post_csv(team, "candidate\nx", content_type="application/json")
    assert wrong_type.status_code == 415


def test_the_same_candidate_invited_twice_is_flagged(api: Api) -> None:
    team = api.team()
    first = team.invite("Ada.Lovelace@gmail.com")
    second = team.invite(" adalovelace+retry@GMAIL.com ")
    team.invite("bob@example.com")
    assert second.invitation["same_candidate_as"] == [first.invitation["id"]]
    listed = {row["id"]: row["same_candidate_as"] for row in team.get("/invitations").json()}
    assert listed == {first.invitation["id"]: [second.invitation["id"]],
                      second.invitation["id"]: [first.invitation["id"]], 3: []}


# -- re-grading ---------------------------------------------------------------------------------

def test_a_regrade_keeps_the_old_result_as_a_version_and_charges_nothing(api: Api) -> None:
    team = api.team()
    candidate = team.invite(max_attempts=1)
    submission = candidate.upload("pass:adds").json()["id"]
    api.wait_for_jobs()
    first = team.get(f"/submissions/{submission}/result").json()
    regraded = team.post(f"/submissions/{submission}/regrade")
    assert regraded.status_code == 202 and regraded.json()["next_version"] == 2
    api.wait_for_jobs()
    versions = team.get(f"/submissions/{submission}/results").json()
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
    assert versions[0]["superseded_by"] == "api key 1" and versions[0]["score"] == first["score"]
    assert team.get(f"/submissions/{submission}/results/1").json() == first
    assert team.get(f"/submissions/{submission}/results/2").json()["score"] == first["score"]
    assert team.get(f"/invitations/{candidate.invitation['id']}").json()["attempts_used"] == 1
    assert "submission.regraded" in actions(api) and len(api.grader.calls) == 2


def test_a_submission_still_being_graded_is_not_regraded(api: Api) -> None:
    team = api.team()
    submission = team.invite().upload("BLOCK pass:all").json()["id"]
    api.grader.started.wait(10)
    refused = team.post(f"/submissions/{submission}/regrade")
    assert refused.status_code == 409 and "still running" in refused.json()["error"]
    api.grader.release()


# -- notes, decisions and the comparison --------------------------------------------------------

def test_notes_and_decisions_are_kept_with_who_and_when(api: Api) -> None:
    team = api.team()
    candidate = team.invite()
    submission = candidate.upload("pass:all").json()["id"]
    note = team.post(f"/submissions/{submission}/notes", json={"body": "clean <b>code</b>"})
    assert note.status_code == 201 and note.json()["author"] == "api key 1"
    assert [n["body"] for n in team.get(f"/submissions/{submission}/notes").json()] == ["clean <b>code</b>"]
    invitation = candidate.invitation["id"]
    team.post(f"/invitations/{invitation}/decisions", json={"decision": "hold", "reason": "second look"})
    api.clock.advance(hours=1)
    team.post(f"/invitations/{invitation}/decisions", json={"decision": "advance"})
    decisions = team.get(f"/invitations/{invitation}/decisions").json()
    assert [(d["decision"], d["reason"]) for d in decisions] == [("hold", "second look"), ("advance", "")]
    assert decisions[1]["created_at"] > decisions[0]["created_at"]
    wrong = team.post(f"/invitations/{invitation}/decisions", json={"decision": "hire"})
    assert wrong.status_code == 422
    assert candidate.get("/submissions").text.count("clean") == 0  # never shown to the candidate
    api.wait_for_jobs()
    assert team.get("/challenges/tiny/comparison").json()["rows"][0]["decision"] == "advance"


def test_the_comparison_ranks_by_each_candidates_best_submission_or_their_latest(api: Api) -> None:
    team = api.team()
    ada, bob = team.invite("ada"), team.invite("bob")
    ada.upload("pass:all")
    api.wait_for_jobs()
    ada.upload("pass:later")  # a bolder second try that failed
    bob.upload("pass:adds pass:secret")
    api.wait_for_jobs()
    best = team.get("/challenges/tiny/comparison").json()
    assert [(row["candidate"], row["score"], row["graded_submissions"]) for row in best["rows"]] == [
        ("ada", 10.0, 2), ("bob", 9.0, 1)]
    assert best["rank_by"] == "best" and best["rows"][0]["submission_id"] != best["rows"][0]["latest_submission_id"]
    latest = team.get("/challenges/tiny/comparison", params={"rank_by": "latest"}).json()
    assert [(row["candidate"], row["score"]) for row in latest["rows"]] == [("bob", 9.0), ("ada", 1.0)]
    assert team.get("/challenges/tiny/comparison", params={"rank_by": "worst"}).status_code == 422


def test_the_comparison_names_metrics_plainly_and_marks_a_shared_machine(api: Api) -> None:
    team = api.team()
    team.invite("ada").upload("pass:all")
    api.wait_for_jobs()
    comparison = team.get("/challenges/tiny/comparison").json()
    assert comparison["metric_labels"]["worker_starts"] == "Sandbox starts"
    assert comparison["metric_labels"]["adds.ms"] == "Adds (ms)"
    assert comparison["rows"][0]["timed_alongside_other_gradings"] == 0


def test_the_comparison_exports_as_csv_that_a_spreadsheet_cannot_run(api: Api) -> None:
    team = api.team()
    team.invite("=HYPERLINK(\"http://evil.example\")").upload("pass:all")
    team.invite("bob").upload("pass:secret")  # fails the gate
    api.wait_for_jobs()
    response = team.get("/challenges/tiny/comparison.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="tiny-comparison.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["candidate"] for row in rows] == ["'=HYPERLINK(\"http://evil.example\")", "bob"]
    assert rows[0]["check: adds"] == "passed" and rows[1]["passed"] == "no" and rows[0]["Sandbox starts"] == "1"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_gives_existing_invitations_their_normalised_candidate(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from api.db import Database, migrate
    from api.models import Invitation
    from tests.api.conftest import _admin

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"cvgrade_migration_{uuid.uuid4().hex[:12]}"
        _admin(server, f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda: _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrate(database, "0003")  # a database from before the round's review
    with database.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO teams (id, name, candidates_see_scores, created_at) VALUES (1, 'acme', false, :now)"),
            {"now": datetime(2030, 1, 1)})
        for number, candidate in enumerate((" Ada.Lovelace+x@GMAIL.com", "Bob Smith"), start=1):
            connection.execute(text(
                "INSERT INTO invitations (id, team_id, challenge_id, challenge_version, candidate, deadline, "
                "expires_at, max_attempts, token_sha256, created_at) VALUES (:id, 1, 'tiny', '1.0.0', :candidate, "
                ":now, :now, 3, :token, :now)"), {"id": number, "candidate": candidate, "now": datetime(2030, 1, 1),
                                                   "token": f"{number:064x}"})
    migrate(database)
    with database.read() as session:
        keys = dict(session.execute(select(Invitation.id, Invitation.candidate_key)).all())
    database.dispose()
    assert keys == {1: "adalovelace@gmail.com", 2: "bob smith"}
