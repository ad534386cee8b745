"""``cvgrade serve`` as a real process on a free port, grading real submissions with the local
sandbox backend: end to end over HTTP, and killed with SIGKILL in the middle of a grading.

Each test uses its own data folder (SQLite) and talks HTTP with httpx; the team
is made with ``cvgrade admin create-team``, as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import judges_of

pytestmark = pytest.mark.slow
CVGRADE = Path(sys.executable).parent / "cvgrade"
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """One ``cvgrade serve`` process over a data folder; ``start`` again after ``kill`` to restart it."""

    def __init__(self, data_dir: Path, challenges_dir: Path, log: Path) -> None:
        self.data_dir, self.challenges_dir, self.log = data_dir, challenges_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self.orphans: list[int] = []
        self.env = dict(os.environ, CVGRADE_JOB_HEARTBEAT_S="0.5", CVGRADE_JOB_STALE_S="3")

    def admin(self, *args: str) -> str:
        done = subprocess.run([CVGRADE, "admin", *args, "--data-dir", str(self.data_dir)], env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [CVGRADE, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), "--jobs", "1",
                 "--backend", "local", "--challenges-dir", str(self.challenges_dir)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.wait_for(lambda: self._healthy(), 120, "the service to answer")

    def _healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, f"the service died:\n{self.tail()}"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no clean-up. Its judge (a session of its own) lives on, orphaned."""
        assert self.process is not None
        self.orphans += judges_of(self.process.pid)
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.orphans:  # only the judges this test's service started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_for(self, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}; the service's log:\n{self.tail()}"
            time.sleep(0.25)


@pytest.fixture
def service(tmp_path: Path, challenge_factory: Any) -> Iterator[Service]:
    slow_checks = textwrap.dedent("""
        import time

        def test_adds(candidate):
            time.sleep(2)  # long enough to be killed in the middle
            assert candidate.add(1, 2) == 3, "add(1, 2) is wrong"

        def test_adds_negatives(candidate):
            assert candidate.add(-1, -2) == -3, "add is wrong for negative numbers"
    """)
    challenge_factory({"test_add.py": slow_checks}, [
        {"name": "adds", "test": "test_add.py::test_adds", "points": 5, "gate": True},
        {"name": "adds_negatives", "test": "test_add.py::test_adds_negatives", "points": 5, "visibility": "hidden"},
    ])
    running = Service(tmp_path / "data", tmp_path / "challenges", tmp_path / "serve.log")
    try:
        yield running
    finally:
        running.stop()


def team_and_candidate(service: Service, max_attempts: int = 3, **invitation: Any
                       ) -> tuple[httpx.Client, httpx.Client]:
    key = service.admin("create-team", "acme").strip().splitlines()[-1]
    team = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    deadline = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = team.post("/invitations", json={"challenge_id": "tiny", "candidate": "ada@example.com",
                                              "deadline": deadline, "max_attempts": max_attempts, **invitation})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    candidate = httpx.Client(base_url=f"{service.url}/candidate", headers={"Authorization": f"Bearer {token}"},
                             timeout=30)
    return team, candidate


def finished(team: httpx.Client, submission_id: int) -> dict[str, Any] | None:
    row: dict[str, Any] = team.get(f"/submissions/{submission_id}").json()
    return row if row["state"] in ("done", "failed", "not_gradable") else None


def test_a_real_service_grades_a_real_submission_end_to_end(service: Service) -> None:
    service.start()
    team, candidate = team_and_candidate(service)
    uploaded = candidate.post("/submissions", files={"file": ("solution.py", GOOD.encode())})
    assert uploaded.status_code == 202, uploaded.text
    submission = uploaded.json()["id"]
    row = service.wait_for(lambda: finished(team, submission), 300, "the grading")
    assert (row["state"], row["score"], row["max_score"], row["passed"]) == ("done", 10, 10, True), row
    result = team.get(f"/submissions/{submission}/result").json()
    assert result["environment"]["sandbox"]["backend"] == "local"
    assert [test["status"] for test in result["tests"]] == ["passed", "passed"]
    feedback = candidate.get(f"/submissions/{submission}").json()["feedback"]
    assert [check["status"] for check in feedback["checks"]] == ["passed", "passed"] and feedback["score"] is None
    assert b"<testsuite" in team.get(f"/submissions/{submission}/result/junit").content


def test_killing_the_service_mid_grading_and_restarting_it_finishes_every_job_exactly_once(
    service: Service,
) -> None:
    service.start()
    team, candidate = team_and_candidate(service)
    submissions = [
        candidate.post("/submissions", files={"file": (f"s{number}.py", source.encode())}).json()["id"]
        for number, source in enumerate((GOOD, WRONG, GOOD))
    ]
    service.wait_for(lambda: team.get(f"/submissions/{submissions[0]}").json()["state"] == "running", 120,
                     "the first grading to start")
    assert service.process is not None
    service.wait_for(lambda: judges_of(service.process.pid), 120, "its judge to start")  # type: ignore[union-attr]
    service.kill()

    service.start()  # the same data folder: the first job's worker is gone, its heartbeat stops
    rows = [service.wait_for(lambda s=s: finished(team, s), 600, f"submission {s}") for s in submissions]
    assert [(row["state"], row["score"], row["charged"]) for row in rows] == [
        ("done", 10, True), ("done", 0, True), ("done", 10, True)]

    events = team.get("/audit-events", params={"limit": 1000}).json()
    done = sorted(event["subject"] for event in events if event["action"] == "job.done")
    assert done == [f"submission {s}" for s in submissions]  # each graded and stored once
    requeued = [event for event in events if event["action"] == "job.requeued"]
    assert [event["subject"] for event in requeued] == [f"submission {submissions[0]}"]
    runs = {event["subject"]: event["detail"]["run"] for event in events if event["action"] == "job.done"}
    assert runs == {f"submission {submissions[0]}": 2, f"submission {submissions[1]}": 1,
                    f"submission {submissions[2]}": 1}
    assert candidate.get(f"{service.url}/candidate").json()["attempts_used"] == 3
