"""The dashboard's pages over HTTP: logging in with the team's key (a cookie that holds only a session
token), every page, the same team isolation as the API on every page, and escaping of what candidates
control. The same pages in a real Chromium: ``test_dashboard_browser.py``."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.models import DashboardSession

if TYPE_CHECKING:
    from conftest import Api, Candidate, TeamClient  # tests/api/conftest.py

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(2)>"


def browser(api: Api, base_url: str = "http://testserver") -> TestClient:
    """A client with its own cookie jar (a second browser), on the running service."""
    return TestClient(api.client.app, base_url=base_url, follow_redirects=False)


def log_in(api: Api, key: str, base_url: str = "http://testserver") -> TestClient:
    client = browser(api, base_url)
    response = client.post("/dashboard/login", data={"api_key": key, "next": "/dashboard"})
    assert response.status_code == 303, response.text
    return client


def test_logging_in_sets_a_strict_http_only_cookie_holding_a_session_token_not_the_key(api: Api) -> None:
    team = api.team()
    client = browser(api)
    response = client.post("/dashboard/login", data={"api_key": team.key, "next": "/dashboard/invitations/1"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/invitations/1"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/dashboard" in cookie and "Secure" not in cookie  # plain http here
    token = client.cookies["cvgrade_session"]
    assert team.key not in cookie and token.startswith("cvgs_")
    with api.service.db.read() as session:
        stored = [row.token_sha256 for row in session.scalars(select(DashboardSession))]
    assert len(stored) == 1 and token not in stored  # only its hash
    assert client.get("/dashboard").status_code == 200


def test_over_https_the_cookie_is_secure(api: Api) -> None:
    team = api.team()
    response = browser(api, "https://testserver").post("/dashboard/login", data={"api_key": team.key})
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize("key, reason", [
    ("cvgk_not-a-real-key", "this API key is not known"),
    ("", "enter your team's API key"),
])
def test_a_wrong_key_gets_the_form_again_with_the_reason(api: Api, key: str, reason: str) -> None:
    response = browser(api).post("/dashboard/login", data={"api_key": key})
    assert response.status_code == 401 and reason in html.unescape(response.text)
    assert "set-cookie" not in response.headers


def test_a_candidate_token_does_not_open_the_dashboard(api: Api) -> None:
    candidate = api.team().invite()
    response = browser(api).post("/dashboard/login", data={"api_key": candidate.token})
    assert response.status_code == 401 and "candidate's invitation token" in html.unescape(response.text)


def test_pages_without_a_session_send_to_the_login_form_and_back(api: Api) -> None:
    client = browser(api)
    response = client.get("/dashboard/submissions/7")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard/submissions/7"
    client.cookies.set("cvgrade_session", "cvgs_forged", path="/dashboard")
    assert client.get("/dashboard").status_code == 303


def test_login_never_redirects_to_another_site(api: Api) -> None:
    team = api.team()
    for target in ("https://evil.example/", "//evil.example/dashboard", "/api/v1/team"):
        response = browser(api).post("/dashboard/login", data={"api_key": team.key, "next": target})
        assert response.headers["location"] == "/dashboard"


def test_a_form_posted_from_another_origin_is_refused(api: Api) -> None:
    team = api.team()
    response = browser(api).post("/dashboard/login", data={"api_key": team.key},
                                 headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_logout_ends_the_session_even_for_a_copied_cookie(api: Api) -> None:
    client = log_in(api, api.team().key)
    token = client.cookies["cvgrade_session"]
    response = client.post("/dashboard/logout")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    copy = browser(api)
    copy.cookies.set("cvgrade_session", token, path="/dashboard")
    assert copy.get("/dashboard").status_code == 303


def test_revoking_the_key_ends_its_sessions_at_once(api: Api) -> None:
    from api.teams import revoke_key

    client = log_in(api, api.team().key)
    assert client.get("/dashboard").status_code == 200
    with api.service.db.write() as session:
        key_id = session.scalar(select(DashboardSession.api_key_id))
        assert key_id is not None
        revoke_key(session, key_id, api.clock())
        session.commit()
    assert client.get("/dashboard").status_code == 303


def test_a_session_expires_after_twelve_hours(api: Api) -> None:
    client = log_in(api, api.team().key)
    api.clock.advance(hours=11, minutes=59)
    assert client.get("/dashboard").status_code == 200
    api.clock.advance(minutes=2)
    assert client.get("/dashboard").status_code == 303


def test_every_page_shows_the_teams_data(api: Api) -> None:
    team = api.team()
    ada, bob = team.invite("ada@example.com"), team.invite("bob@example.com")
    graded = ada.upload("pass:all CHARTS", name="ada.py").json()["id"]
    bob.upload("pass:secret", name="bob.py")  # fails the gate
    api.wait_for_jobs()
    client = log_in(api, team.key)

    home = client.get("/dashboard").text
    assert "ada@example.com" in home and "bob@example.com" in home and "Tiny" in home
    assert "ada.py" in home and "passed" in home and "not passed" in home

    invitation = client.get(f"/dashboard/invitations/{ada.invitation['id']}").text
    assert "ada.py" in invitation and "bob.py" not in invitation and "1 of 3 attempts used" in invitation

    submissions = client.get("/dashboard/challenges/tiny/submissions").text
    assert "ada.py" in submissions and "bob.py" in submissions

    comparison = client.get("/dashboard/challenges/tiny/comparison").text
    assert comparison.index("ada@example.com") < comparison.index("bob@example.com")  # ranked
    assert 'id="scores"' in comparison and "adds.ms" in comparison

    report = client.get(f"/dashboard/submissions/{graded}").text
    assert "Passed: 10 / 10 points" in report and "latency per call" in report and "top-1 accuracy" in report
    assert report.count('<figure class="chart') == 4  # three recorded, and grading time against the limit


def test_a_submission_without_a_result_says_where_it_stands(api: Api) -> None:
    team = api.team()
    submission = team.invite().upload("BLOCK pass:all").json()["id"]
    api.grader.started.wait(10)
    page = log_in(api, team.key).get(f"/dashboard/submissions/{submission}").text
    assert "No result yet: the submission is running" in page
    api.grader.release()


def test_what_candidates_control_is_escaped_and_pages_allow_no_script(api: Api) -> None:
    team = api.team()
    candidate = team.invite(HOSTILE)  # the label a team typed may be pasted from anywhere
    submission = candidate.upload(f"ECHO {HOSTILE}", name=f"{HOSTILE}.py").json()["id"]
    api.wait_for_jobs()
    client = log_in(api, team.key)
    pages = ["/dashboard", f"/dashboard/invitations/{candidate.invitation['id']}",
             "/dashboard/challenges/tiny/submissions", "/dashboard/challenges/tiny/comparison",
             f"/dashboard/submissions/{submission}"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "<script" not in response.text and "<img src=x" not in response.text, path
        assert "&lt;script&gt;" in response.text, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, path
        assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
    report = client.get(f"/dashboard/submissions/{submission}").text
    assert "the candidate&#39;s code raised: ECHO &lt;script&gt;" in report


def test_unknown_pages_and_ids_are_html_404_pages(api: Api) -> None:
    client = log_in(api, api.team().key)
    for path in ("/dashboard/submissions/999", "/dashboard/invitations/999", "/dashboard/challenges/nope/comparison",
                 "/dashboard/submissions/not-a-number", "/dashboard/nothing/here"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), path
    assert browser(api).get("/").headers["location"] == "/dashboard"


# -- isolation: team B, logged in, asks for every page with team A's ids ------------------------

@dataclass
class World:
    a: TeamClient
    b_browser: TestClient
    a_candidate: Candidate
    a_submission: int


@pytest.fixture
def world(api: Api) -> World:
    a, b = api.team("team-a"), api.team("team-b")
    a_candidate = a.invite("ada@a.example")
    b.invite("bob@b.example").upload("pass:adds", name="bob_solution.py")
    a_submission = a_candidate.upload("pass:all", name="ada_solution.py").json()["id"]
    api.wait_for_jobs()
    return World(a, log_in(api, b.key), a_candidate, a_submission)


def _absent(world: World, response: Any) -> None:
    assert response.status_code in (200, 404), response.text
    for secret in ("ada@a.example", "ada_solution.py", world.a_candidate.token):
        assert secret not in response.text


def _not_found(world: World, response: Any) -> None:
    assert response.status_code == 404
    _absent(world, response)


PAGES: dict[str, Callable[[World], None]] = {
    "/dashboard": lambda w: _absent(w, w.b_browser.get("/dashboard")),
    "/dashboard/invitations/{invitation_id}": lambda w: _not_found(
        w, w.b_browser.get(f"/dashboard/invitations/{w.a_candidate.invitation['id']}")),
    "/dashboard/challenges/{challenge_id}/submissions": lambda w: _absent(
        w, w.b_browser.get("/dashboard/challenges/tiny/submissions")),
    "/dashboard/challenges/{challenge_id}/comparison": lambda w: _absent(
        w, w.b_browser.get("/dashboard/challenges/tiny/comparison")),
    "/dashboard/submissions/{submission_id}": lambda w: _not_found(
        w, w.b_browser.get(f"/dashboard/submissions/{w.a_submission}")),
}
NOT_PAGES = {"/dashboard/login", "/dashboard/logout", "/dashboard/{rest:path}"}


def test_every_page_is_covered() -> None:
    from api.routes.dashboard import router

    assert {getattr(route, "path", "") for route in router.routes} == set(PAGES) | NOT_PAGES


@pytest.mark.parametrize("page", list(PAGES))
def test_a_team_never_sees_another_teams_data_on_a_page(world: World, page: str) -> None:
    PAGES[page](world)
    assert "bob_solution.py" in world.b_browser.get("/dashboard/challenges/tiny/submissions").text  # B sees its own
