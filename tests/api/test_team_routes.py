"""The hiring team's side: challenges without their secrets, invitations, results in three formats,
candidates compared, and an audit log of who did what."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

if TYPE_CHECKING:
    from conftest import Api


def test_challenges_show_metadata_and_statement_but_nothing_hidden(api: Api) -> None:
    team = api.team()
    listed = team.get("/challenges").json()
    assert [challenge["id"] for challenge in listed] == ["tiny"]
    detail = team.get("/challenges/tiny").json()
    assert detail["statement"] == "# Tiny\n" and detail["max_score"] == 10
    assert [check["name"] for check in detail["checks"]] == ["adds", "secret", "later"]
    everything = json.dumps(listed) + json.dumps(detail)
    for secret in ("HIDDEN_SOURCE_MARKER", "test_add.py", "return a + b"):  # hidden source, its file, the reference
        assert secret not in everything


def test_an_invitation_token_is_stored_as_its_hash_and_shown_again_only_in_its_link(api: Api) -> None:
    from sqlalchemy import text

    team = api.team()
    candidate = team.invite("ada@example.com", max_attempts=2)
    assert candidate.token.startswith("cvgi_")
    assert candidate.invitation["candidate_url"] == f"http://testserver/c/{candidate.token}"
    listed = team.get("/invitations").json()
    assert [row["candidate"] for row in listed] == ["ada@example.com"]
    assert [row["candidate_url"] for row in listed] == [candidate.invitation["candidate_url"]]
    for row in (listed[0], team.get(f"/invitations/{candidate.invitation['id']}").json()):
        assert candidate.token not in json.dumps({key: value for key, value in row.items() if key != "candidate_url"})
    assert listed[0] | {"attempts_used": 0, "max_attempts": 2, "challenge_version": "1.0.0", "revoked": False} == \
        listed[0]
    with api.service.db.read() as session:  # the database alone cannot give the token back: it needs the key
        stored = " ".join(map(str, session.execute(text("SELECT * FROM invitations")).one()))
    assert candidate.token not in stored and candidate.token.removeprefix("cvgi_") not in stored


def test_the_candidate_url_comes_from_the_configured_public_url(api_factory: Any) -> None:
    api = api_factory(public_url="https://grader.example.com")
    candidate = api.team().invite()
    assert candidate.invitation["candidate_url"] == f"https://grader.example.com/c/{candidate.token}"


def test_a_revoked_invitation_stops_its_token_at_once_and_keeps_its_submissions(api: Api) -> None:
    team = api.team()
    candidate = team.invite()
    candidate.upload("pass:all")
    api.wait_for_jobs()
    revoked = team.post(f"/invitations/{candidate.invitation['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = candidate.get("/submissions")
    assert refused.status_code == 401
    assert refused.json() == {"error": "this invitation was withdrawn by the hiring team"}
    assert len(team.get(f"/invitations/{candidate.invitation['id']}/submissions").json()) == 1


def test_invitations_are_listed_per_challenge(api: Api) -> None:
    team = api.team()
    team.invite("ada")
    assert len(team.get("/invitations", params={"challenge_id": "tiny"}).json()) == 1
    assert team.get("/invitations", params={"challenge_id": "other"}).json() == []


def test_submissions_are_listed_per_invitation_and_per_challenge_with_scores(api: Api) -> None:
    team = api.team()
    ada, bob = team.invite("ada"), team.invite("bob")
    ada.upload("pass:secret")  # the gate "adds" failed
    bob.upload("pass:all")
    api.wait_for_jobs()
    rows = team.get(f"/invitations/{ada.invitation['id']}/submissions").json()
    assert [(row["candidate"], row["state"], row["score"], row["max_score"], row["passed"]) for row in rows] == [
        ("ada", "done", 3, 10, False)]
    everyone = team.get("/challenges/tiny/submissions").json()
    assert [(row["candidate"], row["score"], row["passed"]) for row in everyone] == [("ada", 3, False),
                                                                                     ("bob", 10, True)]


def test_long_submission_lists_come_in_pages_linked_by_the_link_header(api: Api) -> None:
    team = api.team()
    candidates = [team.invite(name, max_attempts=3) for name in ("ada", "bob")]
    for attempt in range(2):
        for candidate in candidates:
            candidate.upload(f"pass:all {attempt}")
    api.wait_for_jobs()
    seen, path, pages = [], "/challenges/tiny/submissions?limit=3", 0
    while path and pages < 10:  # bounded: a Link that never ends must fail here, not hang
        page = team.get(path)
        assert page.status_code == 200
        seen += [row["id"] for row in page.json()]
        pages += 1
        link = page.headers.get("link")
        path = link[link.index("<") + 1:link.index(">")].removeprefix("/api/v1") if link else ""
    assert pages == 2 and len(seen) == 4 and seen == sorted(seen)  # 3, then the last one: none repeated or lost
    ada = candidates[0].invitation["id"]
    first = team.get(f"/invitations/{ada}/submissions", params={"limit": 1})
    assert len(first.json()) == 1 and 'rel="next"' in first.headers["link"]
    rest = team.get(f"/invitations/{ada}/submissions", params={"after_id": first.json()[0]["id"]})
    assert len(rest.json()) == 1 and "link" not in rest.headers  # a page that is not full is the last
    refused = team.get("/challenges/tiny/submissions", params={"limit": 1001})
    assert refused.status_code == 422 and "limit" in refused.text


def test_a_result_comes_as_our_json_as_gradescope_results_and_as_junit_xml(api: Api) -> None:
    team = api.team()
    submission = team.invite().upload("pass:adds pass:later").json()["id"]
    api.wait_for_jobs()
    ours = team.get(f"/submissions/{submission}/result").json()
    assert (ours["score"], ours["max_score"], ours["passed"], ours["status"]) == (7, 10, True, "graded")
    assert ours["environment"] == {"fake": True}  # everything the grader said, for the team
    gradescope = team.get(f"/submissions/{submission}/result/gradescope").json()
    assert gradescope["score"] == 7
    assert [(test["name"], test["score"], test["max_score"], test["status"], test["visibility"])
            for test in gradescope["tests"]] == [("adds", 6, 6, "passed", "visible"),
                                                 ("secret", 0, 3, "failed", "hidden"),
                                                 ("later", 1, 1, "passed", "after_due_date")]
    junit = team.get(f"/submissions/{submission}/result/junit")
    assert junit.headers["content-type"].startswith("application/xml")
    suite = ElementTree.fromstring(junit.content).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    failure = suite.find("testcase[@name='secret']/failure")
    assert failure is not None and "SECRET_EXPECTED_secret" in (failure.text or "")


def test_a_result_that_is_not_ready_or_not_gradable_says_so(api_factory) -> None:
    api = api_factory(workers=False)
    team = api.team()
    submission = team.invite().upload("pass:all").json()["id"]
    waiting = team.get(f"/submissions/{submission}/result")
    assert waiting.status_code == 409
    assert waiting.json() == {"error": f"submission {submission} has no result: its job is queued"}


def test_not_gradable_results_export_to_junit_as_errors_but_not_to_gradescope(api: Api) -> None:
    team = api.team()
    submission = team.invite().upload("INFRASTRUCTURE").json()["id"]
    api.wait_for_jobs()
    assert team.get(f"/submissions/{submission}").json()["state"] == "not_gradable"
    refused = team.get(f"/submissions/{submission}/result/gradescope")
    assert refused.status_code == 409 and "no score to export" in refused.json()["error"]
    suite = ElementTree.fromstring(team.get(f"/submissions/{submission}/result/junit").content).find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("errors")) == ("0", "3")


def test_the_comparison_ranks_each_candidates_latest_graded_submission_when_asked(api: Api) -> None:
    team = api.team()
    ada, bob, cy, dee = (team.invite(name) for name in ("ada", "bob", "cy", "dee"))
    ada.upload("pass:all")
    ada.upload("pass:secret")  # with rank_by=latest her latest counts, not her best (the default)
    bob.upload("pass:all")
    cy.upload("pass:adds pass:secret")
    dee.upload("INFRASTRUCTURE")  # not graded: not in the table
    api.wait_for_jobs()
    comparison = team.get("/challenges/tiny/comparison", params={"rank_by": "latest"}).json()
    assert comparison["checks"] == ["adds", "secret", "later"]
    table = [(row["rank"], row["candidate"], row["score"], row["passed"]) for row in comparison["rows"]]
    assert table == [(1, "bob", 10, True), (2, "cy", 9, True), (3, "ada", 3, False)]
    assert comparison["rows"][1]["checks"] == {"adds": "passed", "secret": "passed", "later": "failed"}
    assert comparison["rows"][1]["metrics"]["adds.ms"] == len("pass:adds pass:secret")


def test_team_settings_decide_whether_candidates_see_scores(api: Api) -> None:
    team = api.team()
    assert team.get("/team").json()["candidates_see_scores"] is False
    changed = api.client.patch("/api/v1/team", headers=team.headers, json={"candidates_see_scores": True})
    assert changed.status_code == 200 and changed.json()["candidates_see_scores"] is True


def test_the_audit_log_says_who_did_what_and_when(api: Api) -> None:
    team = api.team()
    candidate = team.invite("ada")
    candidate.upload("pass:all")
    api.wait_for_jobs()
    api.clock.advance(minutes=5)
    team.post(f"/invitations/{candidate.invitation['id']}/revoke")
    events = team.get("/audit-events").json()
    assert [(event["action"], event["actor"].split(" ")[0]) for event in events] == [
        ("invitation.revoked", "api"), ("job.done", "grading"), ("submission.created", "candidate"),
        ("invitation.started", "candidate"), ("invitation.created", "api"), ("api_key.created", "admin"),
        ("team.created", "admin")]
    assert events[0]["created_at"] == api.clock().isoformat().replace("+00:00", "Z")
    assert events[1]["detail"]["score"] == 10
    older = team.get("/audit-events", params={"before_id": events[1]["id"], "limit": 1}).json()
    assert [event["action"] for event in older] == ["submission.created"]


def test_deadlines_must_be_in_the_future_and_have_a_time_zone(api: Api) -> None:
    team = api.team()
    past = team.post("/invitations", json={"challenge_id": "tiny", "candidate": "ada",
                                           "deadline": (api.clock() - timedelta(hours=1)).isoformat()})
    assert past.status_code == 400 and "already passed" in past.json()["error"]
    naive = team.post("/invitations", json={"challenge_id": "tiny", "candidate": "ada",
                                            "deadline": "2031-01-01T00:00:00"})
    assert naive.status_code == 422 and "deadline" in naive.json()["error"]
    assert team.get("/invitations").json() == []
