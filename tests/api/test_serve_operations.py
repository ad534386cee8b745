"""What an operator meets running ``cvgrade serve`` (found by the hiring-round trial, issue 15): a service that
cannot grade says so at start or on /health instead of failing every job with an engine's traceback words;
each grading leaves one structured log line when it starts and one when it ends; the candidate's token never
reaches the access log; the docs work offline; the SQLite file is its owner's alone."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.teams import create_team
from tests.api.conftest import make_settings
from tests.api.test_service_process import CVGRADE, GOOD, Service, team_and_candidate

NO_ENGINE = "unix:///nonexistent/docker.sock"  # a Docker engine that is not there, as on a host where it stopped


def test_serve_with_the_docker_backend_and_no_engine_refuses_to_start(tmp_path: Path) -> None:
    env = dict(os.environ, DOCKER_HOST=NO_ENGINE)
    done = subprocess.run([CVGRADE, "serve", "--backend", "docker", "--port", "1", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "grading is not possible on this server right now: no Docker engine answers (docker backend)" in \
        done.stderr
    assert "detail: SandboxUnavailable: no Docker engine is reachable" in done.stderr  # for the operator
    assert "or serve with --backend local" in done.stderr and "cvgrade service on" not in done.stdout


@pytest.fixture
def engineless(tmp_path: Path, challenges_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A service configured for Docker whose engine is gone, grading with the real grader."""
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'cvgrade.db'}", challenges_dir, backend="docker")
    with TestClient(create_app(settings)) as client:
        yield client


def test_health_says_degraded_when_the_engine_is_gone(engineless: TestClient,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="cvgrade.api"):
        health = engineless.get("/api/v1/health").json()
    assert health["status"] == "degraded"
    assert health["grading"] == {"backend": "docker", "chosen": None, "ready": False, "problem": (
        "grading is not possible on this server right now: no Docker engine answers (docker backend); the "
        "operator finds the detail in the service's log")}
    assert "no Docker engine is reachable" in caplog.text  # the detail: in the log, not in the answer


def test_a_grading_that_finds_no_engine_tells_the_team_plainly(engineless: TestClient,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    service = engineless.app.state.service  # type: ignore[attr-defined]
    with service.db.write() as session:
        _, _, key = create_team(session, "acme", service.clock())
        session.commit()
    team = {"Authorization": f"Bearer {key}"}
    deadline = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    token = engineless.post("/api/v1/invitations", headers=team, json={
        "challenge_id": "tiny", "candidate": "ada", "deadline": deadline}).json()["token"]
    with caplog.at_level(logging.INFO):
        uploaded = engineless.post("/api/v1/candidate/submissions", headers={"Authorization": f"Bearer {token}"},
                                   files={"file": ("solution.py", GOOD.encode())})
        assert uploaded.status_code == 202, uploaded.text
        row = _wait(lambda: _finished(engineless, team, uploaded.json()["id"]))
    assert (row["state"], row["charged"]) == ("not_gradable", False)
    assert row["error"].startswith("grading is not possible on this server right now: no Docker engine answers")
    assert "DockerException" not in row["error"] and "Exception" not in row["error"]
    assert "no Docker engine is reachable" in caplog.text  # the detail, for the operator
    failed = [r.getMessage() for r in caplog.records if r.name == "cvgrade.api.gradings"]
    assert [line.split()[1] for line in failed] == ["started", "failed"]
    assert "state=not_gradable" in failed[1] and "backend=docker" in failed[1] and "duration_s=" in failed[1]

    engineless.post("/dashboard/login", data={"api_key": key})
    page = engineless.get(f"/dashboard/submissions/{row['id']}").text
    assert "no Docker engine answers" in page and "DockerException" not in page
    assert "Reload the page" not in page and "did not use one of the candidate's attempts" in page


def _finished(client: TestClient, team: dict[str, str], submission: int) -> dict[str, Any] | None:
    row: dict[str, Any] = client.get(f"/api/v1/submissions/{submission}", headers=team).json()
    return row if row["state"] in ("done", "failed", "not_gradable") else None


def _wait(condition: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


@pytest.mark.slow
def test_a_real_service_logs_gradings_masks_tokens_serves_docs_offline_and_keeps_its_database_private(
        tmp_path: Path, challenge_factory: Any) -> None:
    challenge_factory({"test_add.py": "def test_adds(candidate):\n    assert candidate.add(1, 2) == 3\n"},
                      [{"name": "adds", "test": "test_add.py::test_adds", "points": 10}])
    service = Service(tmp_path / "data", tmp_path / "challenges", tmp_path / "serve.log")
    service.start()
    try:
        team, candidate = team_and_candidate(service)
        link = team.get("/invitations/1").json()["candidate_url"]
        token = str(candidate.headers["Authorization"]).removeprefix("Bearer ")
        assert link == f"http://127.0.0.1:{service.port}/c/{token}"  # serve's own address: no public URL set
        opened = httpx.get(link, follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/candidate"
        submission = candidate.post("/submissions", files={"file": ("solution.py", GOOD.encode())}).json()["id"]
        service.wait_for(lambda: team.get(f"/submissions/{submission}").json()["state"] == "done", 300, "grading")

        root = f"http://127.0.0.1:{service.port}"
        health = httpx.get(f"{service.url}/health").json()
        assert health["status"] == "ok" and health["grading"]["chosen"] == "local"
        docs = httpx.get(f"{root}/docs")
        assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
        assert not re.search(r"(src|href)=\"https?:", docs.text)  # nothing from a CDN: it works offline
        assert httpx.get(f"{root}/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert httpx.get(f"{root}/openapi.json").json() == httpx.get(f"{service.url}/openapi.json").json()

        database = tmp_path / "data" / "cvgrade.db"
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
    finally:
        service.stop()
    log = service.log.read_text()
    assert token not in log and token[5:] not in log
    assert '"GET /c/cvgi_*** HTTP/1.1" 303' in log  # the visit is logged, the token is not
    started = re.search(r"grading started job=1 submission=1 challenge=tiny run=1 worker=\S+ backend=local", log)
    ended = re.search(r"grading ended job=1 submission=1 challenge=tiny .*state=done score=10 passed=True "
                      r"duration_s=[0-9.]+ backend=local charged=True", log)
    assert started and ended, log[-3000:]
