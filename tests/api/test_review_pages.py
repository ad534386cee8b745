"""The dashboard's round pages over HTTP: code, pairs, copies and the forms that change things. Every page
is the team's only (another team's ids are 404 pages), everything a candidate wrote is escaped (their
code, a notebook's HTML output, file names), forms come from our own pages only, and a refused form
says why. The same pages in a real Chromium: ``test_round_browser.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_dashboard import HOSTILE, log_in
from tests.conftest import CHALLENGES
from tests.grader.similarity_samples import REFERENCE, RENAMED

if TYPE_CHECKING:
    from conftest import Api, Candidate, TeamClient


@pytest.fixture
def challenges_dir() -> Path:
    return CHALLENGES


@dataclass
class Round:
    api: Api
    team: TeamClient
    browser: TestClient
    ada: Candidate
    bob: Candidate
    ada_submission: int
    bob_submission: int


@pytest.fixture
def round_(api: Api) -> Round:
    team = api.team("vision")
    ada, bob = team.invite("ada@example.com", challenge_id="iou"), team.invite(HOSTILE, challenge_id="iou")
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "id": "a", "source": RENAMED,
         "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"text/html": HOSTILE}}]}]}
    ada_submission = ada.upload("# pass:all\n" + REFERENCE, name="solution.py").json()["id"]
    bob_submission = bob.upload(json.dumps(notebook), name="solution.ipynb").json()["id"]
    api.wait_for_jobs()
    return Round(api, team, log_in(api, team.key), ada, bob, ada_submission, bob_submission)


def pages(r: Round) -> dict[str, str]:
    return {
        "/dashboard/submissions/{submission_id}/code": f"/dashboard/submissions/{r.bob_submission}/code",
        "/dashboard/similarity/{submission_id}/{other_id}":
            f"/dashboard/similarity/{r.ada_submission}/{r.bob_submission}",
        "/dashboard/submissions/{submission_id}/reference": f"/dashboard/submissions/{r.bob_submission}/reference",
        "/dashboard/challenges/{challenge_id}/similarity": "/dashboard/challenges/iou/similarity",
    }


def test_code_pairs_and_copies_pages_escape_what_candidates_wrote(round_: Round) -> None:
    for path in pages(round_).values():
        response = round_.browser.get(path)
        assert response.status_code == 200, path
        assert "<script" not in response.text and "<img src=x" not in response.text, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, path
    code = round_.browser.get(f"/dashboard/submissions/{round_.bob_submission}/code").text
    assert "text/html output, shown as text (never rendered)" in code and "&lt;script&gt;alert" in code
    assert '<span class="k">def</span>' in code  # highlighted by Pygments, as classes only
    assert 'style="' not in code  # the CSP allows no inline style
    pair = round_.browser.get(f"/dashboard/similarity/{round_.ada_submission}/{round_.bob_submission}").text
    assert "the same code" in pair and 'class="matched"' in pair
    assert "solution.ipynb, cell 1" in pair  # the notebook's cell, matched against Ada's file
    copies = round_.browser.get("/dashboard/challenges/iou/similarity").text
    assert "ada@example.com" in copies and "&lt;script&gt;" in copies


def test_a_failed_check_links_to_the_candidates_function(api: Api) -> None:
    team = api.team()
    submission = team.invite("ada", challenge_id="iou").upload(
        "# pass:box_iou_edge_cases\n" + REFERENCE, name="solution.py").json()["id"]
    api.wait_for_jobs()
    report = log_in(api, team.key).get(f"/dashboard/submissions/{submission}").text
    link = f'href="/dashboard/submissions/{submission}/code#f0-L30"'  # nms: reference line 29, plus one
    assert link in report and "the candidate&#39;s nms (solution.py, line 30)" in report


def test_the_upload_downloads_from_the_dashboard_as_an_attachment(round_: Round) -> None:
    response = round_.browser.get(f"/dashboard/submissions/{round_.ada_submission}/upload")
    assert response.status_code == 200 and response.content.decode().endswith(REFERENCE)
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-type"] == "application/octet-stream"


def test_forms_note_decide_change_regrade_and_say_what_was_done(round_: Round) -> None:
    browser, submission = round_.browser, round_.ada_submission
    invitation = round_.ada.invitation["id"]
    posted = browser.post(f"/dashboard/submissions/{submission}/notes", data={"body": HOSTILE})
    assert posted.status_code == 303 and posted.headers["location"].endswith("?done=note#notes")
    page = browser.get(f"/dashboard/submissions/{submission}?done=note").text
    assert "Your note is saved." in page and "&lt;script&gt;alert" in page and "<script" not in page
    posted = browser.post(f"/dashboard/invitations/{invitation}/decision", data={"decision": "advance",
                                                                                 "reason": "strong"})
    assert posted.status_code == 303
    assert 'id="current-decision">advance' in browser.get(f"/dashboard/invitations/{invitation}").text
    posted = browser.post(f"/dashboard/invitations/{invitation}/change", data={"deadline": "2031-03-01T09:30",
                                                                               "max_attempts": "5"})
    assert posted.status_code == 303
    changed = round_.team.get(f"/invitations/{invitation}").json()
    assert changed["max_attempts"] == 5 and changed["deadline"].startswith("2031-03-01T09:30:00")
    assert browser.post(f"/dashboard/submissions/{submission}/regrade").status_code == 303
    round_.api.wait_for_jobs()
    assert "2 version(s)" in browser.get(f"/dashboard/submissions/{submission}").text
    assert browser.post(f"/dashboard/invitations/{invitation}/revoke").status_code == 303
    assert round_.team.get(f"/invitations/{invitation}").json()["revoked"] is True


def test_a_refused_form_says_why_and_links_back(round_: Round) -> None:
    invitation = round_.ada.invitation["id"]
    refused = round_.browser.post(f"/dashboard/invitations/{invitation}/decision", data={"decision": "hire"})
    assert refused.status_code == 422 and "decision" in refused.text
    assert f'href="/dashboard/invitations/{invitation}"' in refused.text
    past = round_.browser.post(f"/dashboard/invitations/{invitation}/change", data={"deadline": "2001-01-01T00:00"})
    assert past.status_code == 400 and "already passed" in past.text
    empty = round_.browser.post("/dashboard/invitations/bulk", data={"csv": "", "challenge_id": "iou"})
    assert empty.status_code == 422 and "The CSV is empty" in empty.text


def test_inviting_from_the_dashboard_shows_the_token_once(round_: Round) -> None:
    created = round_.browser.post("/dashboard/invitations", data={
        "candidate": "cid@example.com", "challenge_id": "iou", "deadline": "2030-06-01T17:00", "max_attempts": "2"})
    assert created.status_code == 200 and "cvgi_" in created.text and "send it only to them" in created.text
    assert "/c/cvgi_" in created.text  # the candidate's link
    assert created.headers["cache-control"] == "no-store"
    many = round_.browser.post("/dashboard/invitations/bulk", data={
        "csv": "candidate\nADA@example.com\ndan@example.com\n", "challenge_id": "iou",
        "deadline": "2030-06-01T17:00"})
    assert many.status_code == 200 and many.text.count("/c/cvgi_") == 2  # a link each (and its token)
    assert "also invited as #1" in many.text  # Ada again
    assert "cvgi_" not in round_.browser.get("/dashboard").text


def test_forms_from_another_origin_or_without_a_session_change_nothing(round_: Round) -> None:
    submission, invitation = round_.ada_submission, round_.ada.invitation["id"]
    evil = {"Origin": "https://evil.example"}
    assert round_.browser.post(f"/dashboard/submissions/{submission}/notes", data={"body": "x"},
                               headers=evil).status_code == 403
    assert round_.browser.post(f"/dashboard/invitations/{invitation}/revoke", headers=evil).status_code == 403
    anonymous = TestClient(round_.api.client.app, follow_redirects=False)
    assert anonymous.post(f"/dashboard/invitations/{invitation}/revoke").status_code == 303
    assert round_.team.get(f"/invitations/{invitation}").json()["revoked"] is False
    assert round_.team.get(f"/submissions/{submission}/notes").json() == []


# -- isolation: team B asks for every round page with team A's ids ------------------------------

FORMS = {
    "/dashboard/invitations", "/dashboard/invitations/bulk", "/dashboard/invitations/{invitation_id}/change",
    "/dashboard/invitations/{invitation_id}/revoke", "/dashboard/invitations/{invitation_id}/decision",
    "/dashboard/submissions/{submission_id}/notes", "/dashboard/submissions/{submission_id}/regrade",
    "/dashboard/challenges/{challenge_id}/known-solutions",
    "/dashboard/challenges/{challenge_id}/known-solutions/{solution_id}/remove",
}


def _b_gets(r: Round, other: TestClient) -> dict[str, Callable[[], Any]]:
    return {
        **{template: (lambda path=path: other.get(path)) for template, path in pages(r).items()},
        "/dashboard/submissions/{submission_id}/upload": lambda: other.get(
            f"/dashboard/submissions/{r.ada_submission}/upload"),
        "/dashboard/submissions/{submission_id}/known/{solution_id}": lambda: other.get(
            f"/dashboard/submissions/{r.ada_submission}/known/1"),
        "/dashboard/challenges/{challenge_id}/comparison.csv": lambda: other.get(
            "/dashboard/challenges/iou/comparison.csv"),
    }


def test_every_round_page_and_form_is_covered() -> None:
    from api.routes.review_pages import router

    assert {getattr(route, "path", "") for route in router.routes} == {
        "/dashboard/submissions/{submission_id}/code", "/dashboard/submissions/{submission_id}/upload",
        "/dashboard/similarity/{submission_id}/{other_id}",
        "/dashboard/submissions/{submission_id}/known/{solution_id}",
        "/dashboard/submissions/{submission_id}/reference", "/dashboard/challenges/{challenge_id}/similarity",
        "/dashboard/challenges/{challenge_id}/comparison.csv",
    } | FORMS


def test_another_team_sees_nothing_of_the_round(round_: Round) -> None:
    b = round_.api.team("other")
    other = log_in(round_.api, b.key)
    secrets = ("ada@example.com", "torch.maximum", round_.ada.token, "solution.ipynb")  # A's people and code
    for template, fetch in _b_gets(round_, other).items():
        response = fetch()
        assert response.status_code in (200, 404), template
        if template.endswith("similarity") or template.endswith(".csv"):
            assert response.status_code == 200  # B's own (empty) view of the challenge
        else:
            assert response.status_code == 404, template
        for secret in secrets:
            assert secret not in response.text, (template, secret)
    sub, inv = round_.ada_submission, round_.ada.invitation["id"]
    for path, data in ((f"/dashboard/submissions/{sub}/notes", {"body": "x"}),
                       (f"/dashboard/submissions/{sub}/regrade", {}),
                       (f"/dashboard/invitations/{inv}/decision", {"decision": "reject"}),
                       (f"/dashboard/invitations/{inv}/change", {"max_attempts": "9"}),
                       (f"/dashboard/invitations/{inv}/revoke", {})):
        assert other.post(path, data=data).status_code == 404, path
    unchanged = round_.team.get(f"/invitations/{inv}").json()
    assert unchanged["revoked"] is False and unchanged["max_attempts"] == 3
    assert round_.team.get(f"/invitations/{inv}/decisions").json() == []
