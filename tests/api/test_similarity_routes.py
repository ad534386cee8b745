"""Copies between candidates, through the API on SQLite and PostgreSQL, on the real ``iou`` challenge:
disguised copies flagged, independent work and the untouched starter not, a pair's matching regions,
known public solutions flagged as the source, and each pair stored once. (Grading is the conftest's
fake, by directives in the file; similarity reads the code itself.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from api.models import SimilarityMatch, SubmissionFingerprint
from api.store import FileUploadStore
from tests.conftest import CHALLENGES
from tests.grader.similarity_samples import KNOWN_GOOD, REFERENCE, REFORMATTED, RENAMED, REORDERED

if TYPE_CHECKING:
    from conftest import Api, Candidate, TeamClient

PASS = "# pass:all\n"


@pytest.fixture
def challenges_dir() -> Path:
    """The real challenges, instead of the conftest's tiny one."""
    return CHALLENGES


def invite(team: TeamClient, who: str, **fields: Any) -> Candidate:
    return team.invite(who, challenge_id="iou", **fields)


def test_copies_between_candidates_are_flagged_and_independent_work_is_not(api: Api) -> None:
    team = api.team()
    ada, bob, cid, dan, eve = (invite(team, f"{name}@example.com") for name in ("ada", "bob", "cid", "dan", "eve"))
    original = ada.upload(PASS + REFERENCE).json()["id"]
    renamed = bob.upload(PASS + RENAMED).json()["id"]
    reordered = cid.upload(PASS + REORDERED).json()["id"]
    independent = dan.upload(PASS + KNOWN_GOOD).json()["id"]
    exact = eve.upload(PASS + REFERENCE).json()["id"]
    again = ada.upload(PASS + REFORMATTED).json()["id"]  # Ada's own second attempt: never compared with hers
    report = team.get("/challenges/iou/similarity").json()
    flagged = {(pair["submission_id"], pair["other_submission_id"]): pair for pair in report["pairs"]
               if pair["flagged"]}
    assert flagged[(original, exact)]["identical"] is True
    assert flagged[(original, renamed)]["same_code"] is True
    assert flagged[(original, reordered)]["share"] >= 0.8 and flagged[(renamed, reordered)]["share"] >= 0.8
    assert (original, again) not in flagged and not any(independent in pair for pair in flagged)
    assert report["submissions"] == 6
    # Every copy of the reference resembles the challenge's own reference solution: it may have leaked.
    assert {item["submission_id"] for item in report["reference"]} == {original, renamed, reordered, exact, again}
    one = team.get(f"/submissions/{renamed}/similarity").json()
    assert {(match["other_candidate"], match["flagged"]) for match in one} >= {("ada@example.com", True)}


def test_submissions_that_only_hold_the_starter_are_not_copies_of_each_other(api: Api) -> None:
    team = api.team()
    starter = (CHALLENGES / "iou" / "starter" / "solution.py").read_text()
    invite(team, "ada").upload(starter)
    invite(team, "bob").upload(starter)
    assert [pair for pair in team.get("/challenges/iou/similarity").json()["pairs"] if pair["flagged"]] == []


def test_a_pair_shows_its_matching_regions_side_by_side(api: Api) -> None:
    team = api.team()
    first = invite(team, "ada").upload(REFERENCE).json()["id"]
    second = invite(team, "bob").upload(REORDERED).json()["id"]
    detail = team.get(f"/submissions/{first}/similarity/{second}").json()
    assert detail["similarity"]["flagged"] is True and len(detail["regions"]) >= 2
    area = next(region for region in detail["regions"] if region["first_line"] <= 8 <= region["last_line"] + 1)
    assert area["file"] == "solution.py" and area["other_first_line"] >= 30  # box_area moved to the end
    assert team.get(f"/submissions/{first}/similarity/{first}").status_code == 404


def test_a_known_public_solution_is_flagged_as_the_source(api: Api) -> None:
    team = api.team()
    copied = invite(team, "ada").upload(RENAMED).json()["id"]
    own = invite(team, "bob").upload(KNOWN_GOOD).json()["id"]
    added = team.post("/challenges/iou/known-solutions", params={"label": "a blog post", "source_url":
                      "https://blog.example/iou"}, files={"file": ("blog.py", REFERENCE.encode())})
    assert added.status_code == 201, added.text
    solution = added.json()
    matches = team.get(f"/submissions/{copied}/similarity").json()
    assert [(m["known_solution"], m["flagged"]) for m in matches if m["known_solution_id"]] == [("a blog post", True)]
    assert not [m for m in team.get(f"/submissions/{own}/similarity").json() if m["known_solution_id"]]
    removed = api.client.delete(f"/api/v1/challenges/iou/known-solutions/{solution['id']}", headers=team.headers)
    assert removed.status_code == 204
    assert not [m for m in team.get(f"/submissions/{copied}/similarity").json() if m["known_solution_id"]]
    refused = team.post("/challenges/iou/known-solutions", params={"label": "x"},
                        files={"file": ("blog.txt", b"text")})
    assert refused.status_code == 422 and "cannot grade" in refused.json()["error"]


def test_each_pair_of_candidates_is_stored_once_by_their_closest_submissions(api: Api) -> None:
    team = api.team()
    ada, bob = invite(team, "ada"), invite(team, "bob")
    ada.upload(REFERENCE)
    bob.upload(KNOWN_GOOD)  # Bob's own first try
    for _ in range(3):
        team.get("/challenges/iou/similarity")
        team.get("/challenges/iou/comparison")
    bob.upload(RENAMED)  # then a copy of Ada's
    invite(team, "cid").upload(REORDERED)
    team.get("/challenges/iou/similarity")
    with api.service.db.read() as session:
        pairs = session.execute(select(SimilarityMatch.submission_id, SimilarityMatch.other_submission_id,
                                       SimilarityMatch.same_code)).all()
    assert sorted(pairs) == [(1, 3, True), (1, 4, False), (3, 4, False)]  # Bob's copy, not his own try
    # Any two submissions can still be compared on request, stored or not.
    assert team.get("/submissions/2/similarity/1").json()["similarity"]["flagged"] is False


def test_new_submissions_are_compared_in_the_background_before_anyone_looks(api: Api) -> None:
    team = api.team()
    invite(team, "ada").upload(REFERENCE)
    invite(team, "bob").upload(RENAMED)
    deadline = time.monotonic() + 30
    while True:  # no page or route asked: the service's keeper did it
        with api.service.db.read() as session:
            if session.execute(select(SimilarityMatch.same_code)).all() == [(True,)]:
                break
        assert time.monotonic() < deadline, "the new submissions were not compared within 30 s"
        time.sleep(0.2)


def test_a_file_the_store_cannot_give_does_not_take_the_pages_down(api: Api) -> None:
    team = api.team()
    first = invite(team, "ada").upload(PASS + REFERENCE).json()["id"]
    api.wait_for_jobs()

    class LostStore(FileUploadStore):  # an operator's mistake, or object storage that lost a file
        def local_path(self, key: str) -> Any:
            raise FileNotFoundError(key)

    api.service.store = LostStore(api.service.settings.uploads_dir)
    invite(team, "bob").upload(PASS + RENAMED)
    api.wait_for_jobs()
    comparison = team.get("/challenges/iou/comparison")
    assert comparison.status_code == 200 and first in [row["submission_id"] for row in comparison.json()["rows"]]
    assert team.get("/challenges/iou/similarity").status_code == 200
    with api.service.db.read() as session:
        assert 2 not in session.scalars(select(SubmissionFingerprint.submission_id)).all()
