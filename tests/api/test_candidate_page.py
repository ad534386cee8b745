"""The candidate's page over HTTP: the link traded for a cookie and a clean address, what the page shows
and hides, uploads from its script and from a plain form, its headers, the session's end; and time boxes,
by page and by API. (In a real browser: test_candidate_page_browser.py.)"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from api.statement import statement_html

if TYPE_CHECKING:
    from conftest import Api, Candidate


def open_link(api: Api, candidate: Candidate) -> Any:
    """Follow the invitation's link as a browser would (the TestClient keeps the cookie)."""
    path = candidate.invitation["candidate_url"].removeprefix("http://testserver")
    return api.client.get(path, follow_redirects=False)


def page_upload(api: Api, content: str, name: str = "solution.py", **headers: str) -> Any:
    return api.client.post("/candidate/submissions", files={"file": (name, content.encode())},
                           headers={"Accept": "application/json", **headers}, follow_redirects=False)


def test_the_link_trades_the_token_for_a_cookie_and_sends_to_a_clean_address(api: Api) -> None:
    candidate = api.team().invite()
    link = candidate.invitation["candidate_url"]
    assert link == f"http://testserver/c/{candidate.token}"
    opened = open_link(api, candidate)
    assert opened.status_code == 303 and opened.headers["location"] == "/candidate"
    assert opened.headers["referrer-policy"] == "no-referrer"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("cvgrade_candidate=cvgc_") and candidate.token not in cookie
    for attribute in ("HttpOnly", "Path=/candidate", "SameSite=lax"):
        assert attribute in cookie, cookie
    page = api.client.get("/candidate")
    assert page.status_code == 200 and candidate.token not in page.text
    assert 'id="statement"' in page.text and 'id="attempts-left">3<' in page.text


def test_the_page_needs_the_link_and_a_bad_link_says_why(api: Api) -> None:
    without = api.client.get("/candidate")
    assert without.status_code == 401 and "opens from the link in your invitation" in without.text
    assert "http://testserver/c/" in without.text
    bad = api.client.get("/c/cvgi_made-up", follow_redirects=False)
    assert bad.status_code == 401 and "This link is not known" in bad.text and "cvgi_made-up" not in bad.text
    team_key = api.team().key
    wrong_kind = api.client.get(f"/c/{team_key}", follow_redirects=False)
    assert wrong_kind.status_code == 401 and team_key not in wrong_kind.text


def test_withdrawing_the_invitation_ends_the_page_session_at_once(api: Api) -> None:
    team = api.team()
    candidate = team.invite()
    open_link(api, candidate)
    assert api.client.get("/candidate").status_code == 200
    team.post(f"/invitations/{candidate.invitation['id']}/revoke")
    assert api.client.get("/candidate").status_code == 401
    assert page_upload(api, "pass:all").status_code == 401
    again = open_link(api, candidate)
    assert again.status_code == 401 and "withdrawn by the hiring team" in again.text


def test_the_page_runs_only_its_own_files(api: Api) -> None:
    open_link(api, api.team().invite())
    page = api.client.get("/candidate")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all(re.search(r'src="/candidate/static/candidate\.js\?v=[0-9a-f]{12}"', tag)
                           for tag in scripts)
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline handlers
    assert not re.search(r"https?://(?!testserver)", page.text.replace("http://testserver", ""))  # nothing remote
    script = api.client.get(re.search(r'src="([^"]+)"', scripts[0]).group(1))  # type: ignore[union-attr]
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert api.client.get("/candidate/static/../../api/app.py").status_code == 404


def test_the_statement_is_markdown_with_no_live_html() -> None:
    html = statement_html("# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) "
                          "<img src=x onerror=alert(3)>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h1>Title</h1>" in html and "<table>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and 'href="javascript' not in html


def test_an_upload_from_the_page_is_answered_as_json_and_followed_in_the_live_part(api: Api) -> None:
    candidate = api.team().invite(max_attempts=2)
    open_link(api, candidate)
    uploaded = page_upload(api, "pass:adds", **{"Idempotency-Key": "page-1"})
    assert uploaded.status_code == 202, uploaded.text
    view = uploaded.json()
    assert (view["filename"], view["attempts_left"]) == ("solution.py", 1)
    assert view["state"] in ("queued", "running")  # an idle worker may take it before the answer is read
    assert page_upload(api, "pass:adds", **{"Idempotency-Key": "page-1"}).status_code == 200  # a retry: the same
    api.wait_for_jobs()
    live = api.client.get("/candidate/live")
    assert f'id="submission-{view["id"]}" data-state="done"' in live.text
    assert f'id="summary-{view["id"]}">1 of 3 checks passed.<' in live.text
    assert "SECRET_EXPECTED" not in live.text and "HIDDEN DESCRIPTION" not in live.text
    assert [row["id"] for row in candidate.get("/submissions").json()] == [view["id"]]  # one, seen by the API too


def test_a_plain_form_upload_works_without_script_and_shows_its_error_on_the_page(api: Api) -> None:
    candidate = api.team().invite(max_attempts=1)
    open_link(api, candidate)
    refused = api.client.post("/candidate/submissions", files={"file": ("notes.txt", b"hello")})
    assert refused.status_code == 422 and "cannot grade a &#39;.txt&#39; file" in refused.text
    assert 'id="upload-message"' in refused.text and 'id="statement"' in refused.text
    sent = api.client.post("/candidate/submissions", files={"file": ("solution.py", b"pass:all")},
                           follow_redirects=False)
    assert sent.status_code == 303 and re.fullmatch(r"/candidate#submission-\d+", sent.headers["location"])
    closed = api.client.get("/candidate")
    assert "The one attempt of this invitation is used" in closed.text and "uploads-closed" in closed.text


def test_uploads_from_another_site_are_refused(api: Api) -> None:
    open_link(api, api.team().invite())
    foreign = page_upload(api, "pass:all", Origin="https://evil.example")
    assert foreign.status_code == 403 and "only be sent from the candidate's page" in foreign.json()["error"]
    assert api.stored_files() == 0


def test_the_page_upload_has_the_upload_limit_not_the_json_one(api_factory: Any) -> None:
    api = api_factory(max_upload_bytes=2 * 1024 * 1024, max_json_bytes=1024)
    open_link(api, api.team().invite())
    big = "pass:all #" + "x" * (1024 * 1024)
    assert page_upload(api, big).status_code == 202
    too_big = page_upload(api, "x" * (3 * 1024 * 1024))
    assert too_big.status_code == 413
    assert too_big.json()["error"].startswith("the upload is larger than 2 MiB, the limit")


# -- time boxes ---------------------------------------------------------------------------------

def test_a_time_box_starts_at_the_first_visit_and_closes_uploads(api: Api) -> None:
    team = api.team()
    candidate = team.invite(time_limit_minutes=60)
    api.clock.advance(hours=2)
    assert team.get(f"/invitations/{candidate.invitation['id']}").json()["started_at"] is None
    open_link(api, candidate)
    row = team.get(f"/invitations/{candidate.invitation['id']}").json()
    assert (row["started_at"], row["uploads_close_at"]) == ("2030-01-01T14:00:00Z", "2030-01-01T15:00:00Z")
    api.clock.advance(minutes=59)
    assert page_upload(api, "pass:all").status_code == 202
    api.clock.advance(minutes=1)
    late = page_upload(api, "pass:all again")
    assert late.status_code == 403
    assert late.json()["error"] == ("your time for this challenge (1 hour from when you first opened it) ran out at "
                                    "2030-01-01 15:00:00 UTC; uploads are closed")
    view = candidate.get("").json()
    assert view["submissions_open"] is False and view["closed_reason"].startswith("your time for this challenge")
    open_link(api, candidate)  # opening the link again does not start the clock again
    assert team.get(f"/invitations/{candidate.invitation['id']}").json()["started_at"] == "2030-01-01T14:00:00Z"


@pytest.mark.parametrize("first_look", ["/api/v1/candidate", "/api/v1/candidate/starter-kit"])
def test_reading_the_statement_by_api_starts_the_clock_too(api: Api, first_look: str) -> None:
    team = api.team()
    candidate = team.invite(time_limit_minutes=30)
    api.clock.advance(minutes=10)
    assert api.client.get(first_look, headers=candidate.headers).status_code == 200
    assert team.get(f"/invitations/{candidate.invitation['id']}").json()["started_at"] == "2030-01-01T12:10:00Z"
    events = [event["action"] for event in team.get("/audit-events").json()]
    assert events.count("invitation.started") == 1


def test_a_time_box_never_outlasts_the_deadline(api: Api) -> None:
    team = api.team()
    candidate = team.invite(time_limit_minutes=24 * 60, deadline="2030-01-01T18:00:00+00:00")
    open_link(api, candidate)
    assert candidate.get("").json()["uploads_close_at"] == "2030-01-01T18:00:00Z"
    api.clock.advance(hours=6)
    assert "the deadline for this invitation passed" in candidate.upload("pass:all").json()["error"]


def test_the_dashboard_shows_when_a_candidate_started_and_their_link(api: Api) -> None:
    team = api.team()
    candidate = team.invite(time_limit_minutes=45)
    api.client.post("/dashboard/login", data={"api_key": team.key})
    page = api.client.get(f"/dashboard/invitations/{candidate.invitation['id']}").text
    assert "not opened yet" in page and "time box 45 min" in page
    assert f'<code id="candidate-url">{candidate.invitation["candidate_url"]}</code>' in page
    api.clock.advance(minutes=5)
    open_link(api, candidate)
    page = api.client.get(f"/dashboard/invitations/{candidate.invitation['id']}").text
    assert "started 2030-01-01 12:05 UTC" in page and "uploads close 2030-01-01 12:50 UTC" in page
    assert "2030-01-01 12:05 UTC" in api.client.get("/dashboard").text


# -- what a candidate sees of scores ------------------------------------------------------------

def test_whether_a_candidate_sees_scores_is_fixed_when_invited_or_chosen_per_invitation(api: Api) -> None:
    team = api.team()
    before = team.invite("before@example.com")
    team.api.client.patch("/api/v1/team", headers=team.headers, json={"candidates_see_scores": True})
    after = team.invite("after@example.com")
    kept_private = team.invite("private@example.com", candidates_see_scores=False)
    for candidate in (before, after, kept_private):
        candidate.upload("pass:all")
    api.wait_for_jobs()
    seen = {candidate.invitation["candidate"]: candidate.get("/submissions").json()[0]["feedback"]["score"]
            for candidate in (before, after, kept_private)}
    assert seen == {"before@example.com": None, "after@example.com": 10, "private@example.com": None}
    assert [before.invitation["candidates_see_scores"], after.invitation["candidates_see_scores"]] == [False, True]
