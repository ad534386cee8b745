"""Bad input and abuse: each gets a 4xx with a sentence a person understands, and nothing
already stored changes (every table's rows, the stored files, the staging folder)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from api.models import Base

if TYPE_CHECKING:
    from conftest import Api, Candidate, TeamClient


@dataclass
class Scene:
    api: Api
    team: TeamClient
    candidate: Candidate
    submission: int


@pytest.fixture
def scene(api: Api) -> Scene:
    team = api.team()
    candidate = team.invite(max_attempts=3)
    submission = candidate.upload("pass:all").json()["id"]
    api.wait_for_jobs()
    return Scene(api, team, candidate, submission)


def snapshot(api: Api) -> dict[str, Any]:
    tables = {}
    with api.service.db.read() as session:
        for table in Base.metadata.sorted_tables:
            tables[table.name] = sorted(map(repr, session.execute(select(table)).all()))
    settings = api.service.settings
    return {
        "tables": tables,
        "stored": sorted(str(path) for path in settings.uploads_dir.rglob("*")),
        "staging": sorted(str(path) for path in settings.staging_dir.rglob("*")),
    }


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def chunks(total_bytes: int) -> Iterator[bytes]:
    for _ in range(total_bytes // 65536 + 1):
        yield b"x" * 65536


def upload_raw(scene: Scene, content: Any, content_type: str = "application/octet-stream",
               params: dict[str, str] | None = None, **headers: str) -> Any:
    return scene.api.client.post("/api/v1/candidate/submissions", content=content,
                                 params=params if params is not None else {"filename": "solution.py"},
                                 headers=dict(scene.candidate.headers, **{"Content-Type": content_type}, **headers))


def invitation(scene: Scene, body: Any = None, *, content: bytes | None = None, **headers: str) -> Any:
    if content is None:
        return scene.team.post("/invitations", json=body)
    return scene.api.client.post("/api/v1/invitations", content=content, headers=dict(scene.team.headers, **headers))


ONE_MIB = 1024 * 1024
VALID = b'{"challenge_id": "tiny", "candidate": "x", "deadline": "2031-01-01T00:00:00Z"}'

# name -> (the request, the status, a phrase its error must hold)
CASES: dict[str, tuple[Callable[[Scene], Any], int, str]] = {
    "malformed JSON": (lambda s: invitation(s, content=b'{"challenge_id": ', **{"Content-Type": "application/json"}),
                       400, "not valid JSON"),
    "JSON sent as text/plain": (lambda s: invitation(s, content=VALID, **{"Content-Type": "text/plain"}),
                                415, "Content-Type: application/json, not text/plain"),
    "JSON without a content type": (lambda s: invitation(s, content=VALID), 415, "has no Content-Type"),
    "a JSON list, not an object": (lambda s: invitation(s, [1, 2]), 422, "the request is not valid"),
    "an unknown field": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x", "deadline":
                                                  "2031-01-01T00:00:00Z", "admin": True}), 422, "admin"),
    "zero attempts": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x", "max_attempts": 0,
                                              "deadline": "2031-01-01T00:00:00Z"}), 422, "max_attempts"),
    "an unknown challenge": (lambda s: invitation(s, {"challenge_id": "nope", "candidate": "x",
                                                     "deadline": "2031-01-01T00:00:00Z"}),
                             404, "there is no challenge 'nope' (known: tiny)"),
    "a challenge id that is a path": (lambda s: invitation(s, {"challenge_id": "../tiny", "candidate": "x",
                                                              "deadline": "2031-01-01T00:00:00Z"}),
                                      404, "there is no challenge '../tiny'"),
    "a challenge path in the URL": (lambda s: s.team.get("/challenges/..%2F..%2Fetc"), 404, "there is no"),
    "an oversized JSON body": (lambda s: invitation(s, content=b" " * ONE_MIB + VALID,
                                                    **{"Content-Type": "application/json"}), 413, "at most"),
    "an oversized chunked JSON body": (lambda s: invitation(s, content=chunks(ONE_MIB),  # type: ignore[arg-type]
                                                            **{"Content-Type": "application/json"}),
                                       413, "at most"),
    "a non-number id": (lambda s: s.team.get("/invitations/abc"), 422, "invitation_id"),
    "an id too large to exist": (lambda s: s.team.get("/submissions/99999999999"), 422, "submission_id"),
    "an unknown query parameter": (lambda s: s.team.get("/invitations", params={"challenge": "tiny"}), 400,
                                   "does not take the query parameter 'challenge'; it takes challenge_id"),
    "a query parameter twice": (lambda s: s.team.get("/audit-events?limit=1&limit=2"), 400, "more than once"),
    "a number for true or false": (lambda s: s.api.client.patch("/api/v1/team", headers=s.team.headers,
                                                                json={"candidates_see_scores": 0}),
                                   422, "candidates_see_scores"),
    "attempts as a string": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x", "max_attempts": "3",
                                                     "deadline": "2031-01-01T00:00:00Z"}), 422, "max_attempts"),
    "an unknown submission": (lambda s: s.team.get("/submissions/999"), 404, "no submission 999"),
    "an unknown route": (lambda s: s.team.get("/nothing-here"), 404, "no route GET /api/v1/nothing-here"),
    "a wrong method": (lambda s: s.api.client.delete("/api/v1/invitations", headers=s.team.headers), 405,
                       "does not accept DELETE"),
    "an unknown API key": (lambda s: s.api.client.get("/api/v1/invitations",
                                                      headers={"Authorization": "Bearer cvgk_nonsense"}),
                           401, "not known"),
    "basic auth instead of a key": (lambda s: s.api.client.get("/api/v1/invitations", auth=("user", "pw")),
                                    401, "needs your team's API key"),
    "an unknown invitation token": (lambda s: s.api.client.get("/api/v1/candidate",
                                                               headers={"Authorization": "Bearer cvgi_nonsense"}),
                                    401, "not known"),
    "an oversized upload, declared": (lambda s: upload_raw(s, b"x" * (2 * ONE_MIB)), 413,
                                      "the upload is larger than 1 MiB, the limit (this one is 2.0 MiB); leave"),
    "an oversized upload, streamed": (lambda s: upload_raw(s, chunks(2 * ONE_MIB)), 413,
                                      "larger than 1 MiB, the limit"),
    "an oversized upload in a form": (lambda s: s.candidate.upload(b"x" * (ONE_MIB + 10)), 413,
                                      "larger than 1 MiB, the limit"),
    "a zip that climbs out with ../": (lambda s: s.candidate.upload(
        zip_of({"solution.py": b"pass:all", "../../evil.py": b"x"}), name="sub.zip"), 422, "points outside"),
    "a zip with an absolute path": (lambda s: s.candidate.upload(
        zip_of({"/etc/cron.d/evil": b"x", "solution.py": b""}), name="sub.zip"), 422, "absolute path"),
    "a zip bomb": (lambda s: s.candidate.upload(zip_of({"solution.py": b"", "big.bin": b"\0" * (60 * ONE_MIB)}),
                                                name="sub.zip"), 422, "larger than"),
    "a zip that is not a zip": (lambda s: s.candidate.upload(b"PK\x03\x04 broken", name="sub.zip"), 422,
                                "not a valid zip archive"),
    "a notebook that is not JSON": (lambda s: s.candidate.upload(b"print('hi')", name="work.ipynb"), 422,
                                    "work.ipynb"),
    "a file kind we cannot grade": (lambda s: s.candidate.upload(b"hello", name="notes.txt"), 422,
                                    "cannot grade a '.txt' file"),
    "an upload as JSON": (lambda s: upload_raw(s, b"{}", "application/json"), 415,
                          "must be multipart/form-data"),
    "a raw upload without its name": (lambda s: upload_raw(s, b"pass:all", params={}), 400, "?filename="),
    "a form without a file": (lambda s: s.api.client.post("/api/v1/candidate/submissions", data={"x": "1"},
                                                         files={"other": ("a.py", b"")}, headers=s.candidate.headers),
                              400, "part named 'file'"),
    "a form with two files": (lambda s: s.api.client.post(
        "/api/v1/candidate/submissions", headers=s.candidate.headers,
        files=[("file", ("a.py", b"pass:all")), ("file", ("b.py", b"pass:all"))]), 400, "one file per upload"),
    "a form without a boundary": (lambda s: upload_raw(s, b"--x\r\n", "multipart/form-data"), 400, "boundary"),
    "a malformed form": (lambda s: upload_raw(s, b"garbage without boundaries", "multipart/form-data; boundary=zz"),
                         400, "the multipart/form-data body is malformed"),
    "an idempotency key that is not ASCII": (lambda s: upload_raw(s, b"pass:all", **{"Idempotency-Key": "k" * 300}),
                                             400, "Idempotency-Key"),
    "another candidate's submission": (lambda s: s.candidate.get("/submissions/999"), 404, "no submission 999"),
    # Found by the hiring-round trial (issue 15): each was accepted, charged or a 500 before.
    "an empty upload": (lambda s: s.candidate.upload(b"", name="solution.py"), 422,
                        "solution.py is empty (0 bytes)"),
    "a deadline ten thousand years away": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x",
                                                                   "deadline": "9999-12-31T23:59:59Z"}),
                                           422, "more than ten years away"),
    "a deadline before year 1 in UTC": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x",
                                                                "deadline": "0001-01-01T00:00:00+14:00"}),
                                        422, "is out of range"),
    "a deadline that is not a time": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x",
                                                              "deadline": "next friday"}),
                                      422, "must be a date and time with a time zone, such as 2030-06-01T17:00:00Z"),
    "a time box of no minutes": (lambda s: invitation(s, {"challenge_id": "tiny", "candidate": "x",
                                                         "deadline": "2031-01-01T00:00:00Z",
                                                         "time_limit_minutes": 0}), 422, "time_limit_minutes"),
    "a notebook whose JSON breaks": (lambda s: s.candidate.upload(b'{"cells": [', name="work.ipynb"), 422,
                                     "it is not JSON (expecting value at line 1, column 12)"),
    "a notebook of the wrong shape": (lambda s: s.candidate.upload(b'{"cells": 3}', name="work.ipynb"), 422,
                                      "it does not follow the notebook format"),
    "malformed JSON, where it breaks": (lambda s: invitation(s, content=b'{"challenge_id": ',
                                                             **{"Content-Type": "application/json"}),
                                        400, "(expecting value at character 17)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_4xx_that_says_why_and_changes_nothing(scene: Scene, case: str) -> None:
    request, status, phrase = CASES[case]
    before = snapshot(scene.api)
    response = request(scene)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and phrase in body["error"], body
    assert body["error"][0].islower() or body["error"][0].isdigit() or body["error"][0] in "'/."
    assert snapshot(scene.api) == before


def test_revoked_and_expired_tokens_are_refused_and_change_nothing(scene: Scene) -> None:
    scene.team.post(f"/invitations/{scene.candidate.invitation['id']}/revoke")
    before = snapshot(scene.api)
    for response in (scene.candidate.get(""), scene.candidate.upload("pass:all")):
        assert response.status_code == 401 and response.json() == {
            "error": "this invitation was withdrawn by the hiring team"}
    assert snapshot(scene.api) == before
    other = scene.team.invite()
    scene.api.clock.advance(days=60)
    before = snapshot(scene.api)
    refused = other.upload("pass:all")
    assert refused.status_code == 401 and "this invitation expired at" in refused.json()["error"]
    assert snapshot(scene.api) == before


def test_a_revoked_api_key_is_refused(scene: Scene) -> None:
    from api.teams import revoke_key

    with scene.api.service.db.write() as session:
        revoke_key(session, 1, scene.api.clock())
        session.commit()
    refused = scene.team.get("/invitations")
    assert refused.status_code == 401 and "was revoked" in refused.json()["error"]


def test_a_wrong_method_is_answered_with_every_method_the_path_takes(scene: Scene) -> None:
    response = scene.api.client.options("/api/v1/team", headers=scene.team.headers)
    assert response.status_code == 405 and response.headers["allow"] == "GET, PATCH"
    response = scene.api.client.put(f"/api/v1/invitations/{scene.candidate.invitation['id']}",
                                    headers=scene.team.headers)
    assert response.status_code == 405 and response.headers["allow"] == "GET, PATCH"
