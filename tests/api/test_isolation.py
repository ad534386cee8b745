"""A team never sees another team's data; a candidate never sees another candidate's. Every route.

Two teams, each with a candidate who uploaded a graded submission. Every route
of the API is called by the other side with the first side's ids, and its
answer must be a 404 (the same as for an id that does not exist) or hold none
of the first side's data. A route added without a line in ``TEAM_ROUTES`` or
``CANDIDATE_ROUTES`` fails ``test_every_route_is_covered``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Api, Candidate, TeamClient  # tests/api/conftest.py


@dataclass
class World:
    a: TeamClient
    b: TeamClient
    a_candidate: Candidate
    b_candidate: Candidate
    a_submission: int
    b_submission: int
    a_webhook: int

    def a_secrets(self) -> list[str]:
        """Strings that identify team A's data: its candidate, its token, its file, its webhook."""
        return ["ada@a.example", self.a_candidate.token, "ada_solution.py", "a-hooks.example"]


@pytest.fixture
def world(api: Api) -> World:
    a, b = api.team("team-a"), api.team("team-b")
    a_candidate = a.invite("ada@a.example")
    b_candidate = b.invite("bob@b.example")
    a_submission = a_candidate.upload("pass:all", name="ada_solution.py").json()["id"]
    b_submission = b_candidate.upload("pass:adds", name="bob_solution.py").json()["id"]
    api.wait_for_jobs()
    a_webhook = a.post("/webhooks", json={"url": "https://a-hooks.example/cvgrade"}).json()["id"]
    return World(a, b, a_candidate, b_candidate, a_submission, b_submission, a_webhook)


def _absent(world: World, response: Any) -> None:
    assert response.status_code < 500, response.text
    for secret in world.a_secrets():
        assert secret not in response.text, f"{secret!r} leaked: {response.text[:300]}"


def _not_found(world: World, response: Any) -> None:
    assert response.status_code == 404, response.text
    assert set(response.json()) == {"error"}
    _absent(world, response)


Check = Callable[[World], None]
A_INVITATION = "{a_invitation}"

# (method, path) -> what team B does, and what it must get.
TEAM_ROUTES: dict[tuple[str, str], Check] = {
    ("GET", "/api/v1/team"): lambda w: _absent(w, w.b.get("/team")),
    ("PATCH", "/api/v1/team"): lambda w: (
        w.b.api.client.patch("/api/v1/team", headers=w.b.headers, json={"candidates_see_scores": True}),
        _absent(w, w.b.get("/team")),
        _check(w.a.get("/team").json()["candidates_see_scores"] is False),
    ),
    ("GET", "/api/v1/challenges"): lambda w: _absent(w, w.b.get("/challenges")),
    ("GET", "/api/v1/challenges/{challenge_id}"): lambda w: _absent(w, w.b.get("/challenges/tiny")),
    ("POST", "/api/v1/invitations"): lambda w: _absent(w, w.b.post("/invitations", json={
        "challenge_id": "tiny", "candidate": "carol", "deadline": "2031-01-01T00:00:00Z"})),
    ("GET", "/api/v1/invitations"): lambda w: _absent(w, w.b.get("/invitations")),
    ("GET", "/api/v1/invitations/{invitation_id}"): lambda w: _not_found(
        w, w.b.get(f"/invitations/{w.a_candidate.invitation['id']}")),
    ("POST", "/api/v1/invitations/{invitation_id}/revoke"): lambda w: (
        _not_found(w, w.b.post(f"/invitations/{w.a_candidate.invitation['id']}/revoke")),
        _check(w.a_candidate.get("").status_code == 200),
    ),
    ("GET", "/api/v1/audit-events"): lambda w: _absent(w, w.b.get("/audit-events")),
    ("GET", "/api/v1/invitations/{invitation_id}/submissions"): lambda w: _not_found(
        w, w.b.get(f"/invitations/{w.a_candidate.invitation['id']}/submissions")),
    ("GET", "/api/v1/challenges/{challenge_id}/submissions"): lambda w: _only_b(
        w, w.b.get("/challenges/tiny/submissions")),
    ("GET", "/api/v1/challenges/{challenge_id}/comparison"): lambda w: _only_b(
        w, w.b.get("/challenges/tiny/comparison")),
    ("GET", "/api/v1/submissions/{submission_id}"): lambda w: _not_found(w, w.b.get(f"/submissions/{w.a_submission}")),
    ("GET", "/api/v1/submissions/{submission_id}/result"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/result")),
    ("GET", "/api/v1/submissions/{submission_id}/result/gradescope"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/result/gradescope")),
    ("GET", "/api/v1/submissions/{submission_id}/result/junit"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/result/junit")),
    ("POST", "/api/v1/webhooks"): lambda w: _absent(w, w.b.post("/webhooks", json={
        "url": "https://b-hooks.example/cvgrade"})),
    ("GET", "/api/v1/webhooks"): lambda w: _absent(w, w.b.get("/webhooks")),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): lambda w: (
        _not_found(w, w.b.api.client.delete(f"/api/v1/webhooks/{w.a_webhook}", headers=w.b.headers)),
        _check([hook["id"] for hook in w.a.get("/webhooks").json()] == [w.a_webhook]),
    ),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): lambda w: _not_found(
        w, w.b.get(f"/webhooks/{w.a_webhook}/deliveries")),
    # The round: managing invitations, re-grades, notes, decisions, code and copies.
    ("PATCH", "/api/v1/invitations/{invitation_id}"): lambda w: (
        _not_found(w, w.b.api.client.patch(f"/api/v1/invitations/{w.a_candidate.invitation['id']}",
                                           headers=w.b.headers, json={"max_attempts": 9})),
        _check(w.a.get(f"/invitations/{w.a_candidate.invitation['id']}").json()["max_attempts"] == 3),
    ),
    ("POST", "/api/v1/bulk-invitations"): lambda w: _check(  # A's invitation of the same person stays A's
        [row["same_candidate_as"] for row in w.b.api.client.post(
            "/api/v1/bulk-invitations", params={"challenge_id": "tiny", "deadline": "2031-01-01T00:00:00Z"},
            content=b"candidate\nADA@a.example\n", headers={**w.b.headers, "Content-Type": "text/csv"}).json()]
        == [[]]),
    ("POST", "/api/v1/submissions/{submission_id}/regrade"): lambda w: _not_found(
        w, w.b.post(f"/submissions/{w.a_submission}/regrade")),
    ("GET", "/api/v1/submissions/{submission_id}/results"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/results")),
    ("GET", "/api/v1/submissions/{submission_id}/results/{version}"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/results/1")),
    ("GET", "/api/v1/submissions/{submission_id}/notes"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/notes")),
    ("POST", "/api/v1/submissions/{submission_id}/notes"): lambda w: (
        _not_found(w, w.b.post(f"/submissions/{w.a_submission}/notes", json={"body": "mine now"})),
        _check(w.a.get(f"/submissions/{w.a_submission}/notes").json() == []),
    ),
    ("GET", "/api/v1/invitations/{invitation_id}/decisions"): lambda w: _not_found(
        w, w.b.get(f"/invitations/{w.a_candidate.invitation['id']}/decisions")),
    ("POST", "/api/v1/invitations/{invitation_id}/decisions"): lambda w: (
        _not_found(w, w.b.post(f"/invitations/{w.a_candidate.invitation['id']}/decisions",
                               json={"decision": "reject"})),
        _check(w.a.get(f"/invitations/{w.a_candidate.invitation['id']}/decisions").json() == []),
    ),
    ("GET", "/api/v1/submissions/{submission_id}/files"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/files")),
    ("GET", "/api/v1/submissions/{submission_id}/upload"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/upload")),
    ("GET", "/api/v1/challenges/{challenge_id}/similarity"): lambda w: _absent(
        w, w.b.get("/challenges/tiny/similarity")),
    ("GET", "/api/v1/submissions/{submission_id}/similarity"): lambda w: _not_found(
        w, w.b.get(f"/submissions/{w.a_submission}/similarity")),
    ("GET", "/api/v1/submissions/{submission_id}/similarity/{other_id}"): lambda w: (
        _not_found(w, w.b.get(f"/submissions/{w.a_submission}/similarity/{w.b_submission}")),
        _not_found(w, w.b.get(f"/submissions/{w.b_submission}/similarity/{w.a_submission}")),
    ),
    ("GET", "/api/v1/challenges/{challenge_id}/known-solutions"): lambda w: _absent(
        w, w.b.get("/challenges/tiny/known-solutions")),
    ("POST", "/api/v1/challenges/{challenge_id}/known-solutions"): lambda w: _absent(w, w.b.post(
        "/challenges/tiny/known-solutions", params={"label": "b's"},
        files={"file": ("known.py", b"def add(a, b):\n    total = a + b\n    return total\n" * 3)})),
    ("DELETE", "/api/v1/challenges/{challenge_id}/known-solutions/{solution_id}"): lambda w: _not_found(
        w, w.b.api.client.delete("/api/v1/challenges/tiny/known-solutions/1", headers=w.b.headers)),
    ("GET", "/api/v1/challenges/{challenge_id}/comparison.csv"): lambda w: _only_b(
        w, w.b.get("/challenges/tiny/comparison.csv")),
}

# (method, path) -> what team B's candidate does, and what it must get.
CANDIDATE_ROUTES: dict[tuple[str, str], Check] = {
    ("GET", "/api/v1/candidate"): lambda w: _absent(w, w.b_candidate.get("")),
    ("GET", "/api/v1/candidate/starter-kit"): lambda w: _absent(w, w.b_candidate.get("/starter-kit")),
    ("POST", "/api/v1/candidate/submissions"): lambda w: (
        _absent(w, w.b_candidate.upload("pass:all", key="same-key-as-a")),
        _absent(w, w.a_candidate.upload("pass:all", key="same-key-as-a")),  # keys are per invitation
        _check(len(w.a_candidate.get("/submissions").json()) == 2),
    ),
    ("GET", "/api/v1/candidate/submissions"): lambda w: _only_own(w, w.b_candidate.get("/submissions")),
    ("GET", "/api/v1/candidate/submissions/{submission_id}"): lambda w: _not_found(
        w, w.b_candidate.get(f"/submissions/{w.a_submission}")),
}

PUBLIC_ROUTES = {("GET", "/api/v1/health")}


def _check(condition: bool) -> None:
    assert condition


def _only_b(world: World, response: Any) -> None:
    _absent(world, response)
    assert "bob@b.example" in response.text  # and B does see its own


def _only_own(world: World, response: Any) -> None:
    _absent(world, response)
    assert [row["id"] for row in response.json()] == [world.b_submission]


def test_every_route_is_covered(api: Api) -> None:
    paths = api.client.get("/api/v1/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert routes == set(TEAM_ROUTES) | set(CANDIDATE_ROUTES) | PUBLIC_ROUTES


@pytest.mark.parametrize("route", list(TEAM_ROUTES), ids=lambda route: " ".join(route))
def test_a_team_never_sees_another_teams_data(world: World, route: tuple[str, str]) -> None:
    TEAM_ROUTES[route](world)


@pytest.mark.parametrize("route", list(CANDIDATE_ROUTES), ids=lambda route: " ".join(route))
def test_a_candidate_never_sees_another_candidates_data(world: World, route: tuple[str, str]) -> None:
    CANDIDATE_ROUTES[route](world)


@pytest.mark.parametrize("route", sorted(TEAM_ROUTES), ids=lambda route: " ".join(route))
def test_team_routes_refuse_a_candidate_token_and_no_token(world: World, route: tuple[str, str]) -> None:
    method, path = route
    path = path.format(challenge_id="tiny", invitation_id=world.a_candidate.invitation["id"],
                       submission_id=world.a_submission, webhook_id=world.a_webhook, other_id=world.b_submission,
                       version=1, solution_id=1)
    for headers in ({"Authorization": f"Bearer {world.a_candidate.token}"}, {}):
        response = world.a.api.client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, response.text
        assert response.json()["error"] and response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("route", sorted(CANDIDATE_ROUTES), ids=lambda route: " ".join(route))
def test_candidate_routes_refuse_a_team_key_and_no_token(world: World, route: tuple[str, str]) -> None:
    method, path = route
    path = path.format(submission_id=world.a_submission)
    for headers in ({"Authorization": f"Bearer {world.a.key}"}, {}):
        response = world.a.api.client.request(method, path, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]
