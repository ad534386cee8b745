"""``cvgrade submit`` against a real ``cvgrade serve`` (local sandbox, real gradings): the feedback
printed as ``cvgrade grade`` prints a result, the same exit codes, progress while it grades, and an
upload whose answer was lost sent again without making a second submission."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import socketserver
import subprocess
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_service_process import CVGRADE, GOOD, WRONG, Service, team_and_candidate

pytestmark = pytest.mark.slow
CHECKS = textwrap.dedent("""
    def test_adds(candidate):
        assert candidate.add(1, 2) == 3, "add(1, 2) is wrong"

    def test_adds_negatives(candidate):
        assert candidate.add(-1, -2) == -3, "add(-1, -2) should be SECRET_EXPECTED"
""")


@pytest.fixture
def service(tmp_path: Path, challenge_factory: Any) -> Iterator[Service]:
    challenge_factory({"test_add.py": CHECKS}, [
        {"name": "adds", "test": "test_add.py::test_adds", "points": 5, "gate": True},
        {"name": "adds_negatives", "test": "test_add.py::test_adds_negatives", "points": 5, "visibility": "hidden"},
    ])
    running = Service(tmp_path / "data", tmp_path / "challenges", tmp_path / "serve.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def submit(service_url: str, token: str, path: Path, *args: str, timeout_s: float = 300
           ) -> subprocess.CompletedProcess[str]:
    server = service_url.removesuffix("/api/v1")
    env = {key: value for key, value in os.environ.items() if key not in ("CVGRADE_SERVER", "CVGRADE_TOKEN")}
    return subprocess.run([str(CVGRADE), "submit", str(path), "--server", server, "--token", token, *args],
                          capture_output=True, text=True, timeout=timeout_s, env=env)


def candidate_token(candidate: httpx.Client) -> str:
    return str(candidate.headers["Authorization"]).removeprefix("Bearer ")


def test_a_passing_solution_prints_its_checks_and_exits_0(service: Service, tmp_path: Path) -> None:
    _, candidate = team_and_candidate(service, candidates_see_scores=True)
    solution = tmp_path / "solution.py"
    solution.write_text(GOOD)
    done = submit(service.url, candidate_token(candidate), solution)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uploading solution.py" in done.stderr and "submission 1 accepted; 2 attempt(s) left" in done.stderr
    assert "waiting for a grader" in done.stderr or "being graded" in done.stderr  # progress while it grades
    for expected in ("adds", "adds_negatives", "5/5", "passed", "PASSED", "2 attempt(s) left"):
        assert expected in done.stdout, done.stdout


def test_a_wrong_solution_exits_1_and_hidden_checks_keep_their_secrets(service: Service, tmp_path: Path) -> None:
    _, candidate = team_and_candidate(service, candidates_see_scores=True)
    solution = tmp_path / "wrong.py"
    solution.write_text(WRONG)
    done = submit(service.url, candidate_token(candidate), solution)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "add(1, 2) is wrong" in done.stdout and "NOT PASSED" in done.stdout  # a visible check's message
    assert "SECRET_EXPECTED" not in done.stdout  # a hidden check's is never shown


def test_when_the_team_keeps_the_verdict_a_graded_solution_exits_0_with_json(service: Service,
                                                                              tmp_path: Path) -> None:
    import json

    _, candidate = team_and_candidate(service)
    solution = tmp_path / "wrong.py"
    solution.write_text(WRONG)
    done = submit(service.url, candidate_token(candidate), solution, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    view = json.loads(done.stdout)
    assert view["state"] == "done" and view["feedback"]["passed"] is None and view["feedback"]["score"] is None
    assert [check["status"] for check in view["feedback"]["checks"]] == ["failed", "failed"]


def test_a_folder_is_sent_zipped(service: Service, tmp_path: Path) -> None:
    team, candidate = team_and_candidate(service)
    folder = tmp_path / "my_solution"
    folder.mkdir()
    (folder / "solution.py").write_text(GOOD)
    done = submit(service.url, candidate_token(candidate), folder, "--no-wait")
    assert done.returncode == 0, done.stderr
    assert "uploading my_solution.zip" in done.stderr
    [row] = team.get("/challenges/tiny/submissions").json()
    assert (row["filename"], row["kind"]) == ("my_solution.zip", "zip")


class DropFirstAnswer(socketserver.ThreadingTCPServer):
    """A TCP proxy to the service that, for the first connection, passes the request on but never
    passes the answer back: the upload is stored, and the client sees the connection drop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port, self.connections, self.lock = upstream_port, 0, threading.Lock()
        super().__init__(("127.0.0.1", 0), _Pipe)


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: DropFirstAnswer = self.server  # type: ignore[assignment]
        with server.lock:
            server.connections += 1
            drop = server.connections == 1
        with socket.create_connection(("127.0.0.1", server.upstream_port)) as upstream:
            client: socket.socket = self.request
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is upstream and drop:
                        return  # the service answered; the client never hears it
                    (upstream if source is client else client).sendall(data)


def test_an_upload_whose_answer_was_lost_is_sent_again_and_stored_once(service: Service, tmp_path: Path) -> None:
    team, candidate = team_and_candidate(service)
    proxy = DropFirstAnswer(service.port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        solution = tmp_path / "solution.py"
        solution.write_text(GOOD)
        done = submit(f"http://127.0.0.1:{proxy.server_address[1]}", candidate_token(candidate), solution)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sending it again" in done.stderr and "the service already had it" in done.stderr
    assert len(team.get("/challenges/tiny/submissions").json()) == 1
    assert candidate.get(f"{service.url}/candidate").json()["attempts_used"] == 1


def test_bad_input_exits_2_and_an_unreachable_service_3(service: Service, tmp_path: Path) -> None:
    _, candidate = team_and_candidate(service)
    solution = tmp_path / "solution.py"
    solution.write_text(GOOD)
    wrong_token = submit(service.url, "cvgi_not-a-token", solution)
    assert wrong_token.returncode == 2 and "this invitation token is not known" in wrong_token.stderr
    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as archive:
        archive.writestr("../../etc/solution.py", GOOD)
    refused = submit(service.url, candidate_token(candidate), unsafe)
    assert refused.returncode == 2 and "unsafe.zip" in refused.stderr, refused.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert submit(service.url, candidate_token(candidate), text).returncode == 2
    with contextlib.closing(socket.socket()) as nothing_there:
        nothing_there.bind(("127.0.0.1", 0))
        port = nothing_there.getsockname()[1]
        unreachable = submit(f"http://127.0.0.1:{port}", candidate_token(candidate), solution, "--retries", "1")
    assert unreachable.returncode == 3 and "could not be reached" in unreachable.stderr
    assert "sending it again in 1 s" in unreachable.stderr


def cvgrade_submit(service_url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("CVGRADE_SERVER", "CVGRADE_TOKEN")}
    return subprocess.run([str(CVGRADE), "submit", *args, "--server", service_url.removesuffix("/api/v1"),
                           "--token", token], capture_output=True, text=True, timeout=300, env=env)


def test_after_no_wait_status_brings_back_the_feedback(service: Service, tmp_path: Path) -> None:
    import json

    team, candidate = team_and_candidate(service, candidates_see_scores=True)
    token = candidate_token(candidate)
    solution = tmp_path / "solution.py"
    solution.write_text(GOOD)
    uploaded = cvgrade_submit(service.url, token, str(solution), "--no-wait")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "see its feedback later with `cvgrade submit --status 1`" in uploaded.stderr

    followed = cvgrade_submit(service.url, token, "--status", "1")  # waits for the grading, as submit would have
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "PASSED" in followed.stdout and "10/10" in followed.stdout.replace(" ", "")
    again = cvgrade_submit(service.url, token, "--status", "1", "--json", "--no-wait")
    assert again.returncode == 0 and json.loads(again.stdout)["feedback"]["passed"] is True
    assert len(team.get("/challenges/tiny/submissions").json()) == 1  # nothing was uploaded again

    unknown = cvgrade_submit(service.url, token, "--status", "99")
    assert unknown.returncode == 2 and "you have no submission 99" in unknown.stderr
    both = cvgrade_submit(service.url, token, str(solution), "--status", "1")
    neither = cvgrade_submit(service.url, token)
    for done in (both, neither):
        assert done.returncode == 2 and "give the file or folder to upload, or --status ID" in done.stderr


def test_code_python_cannot_parse_is_refused_at_once_and_uses_no_attempt(service: Service, tmp_path: Path) -> None:
    _, candidate = team_and_candidate(service, max_attempts=1)
    broken = tmp_path / "solution.py"
    broken.write_text("def add(a, b)\n    return a + b\n")
    refused = submit(service.url, candidate_token(candidate), broken)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "solution.py, line 1: expected ':' (`def add(a, b)`); Python cannot parse it" in refused.stderr
    assert candidate.get(f"{service.url}/candidate").json()["attempts_used"] == 0
    broken.write_text(GOOD)
    assert submit(service.url, candidate_token(candidate), broken).returncode == 0  # the one attempt is still there
