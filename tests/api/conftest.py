"""Fixtures for the service's tests: databases (SQLite and a real PostgreSQL), a service with a
fake grader and a clock the test moves, and teams and candidates that talk to it over HTTP.

PostgreSQL: ``CVGRADE_TEST_POSTGRES_URL`` (a database whose user may create
databases) if set, else a throwaway cluster started here from Debian's
``postgresql`` package on a free loopback port. Without either, PostgreSQL
tests skip, and under ``CI=true`` they fail.

The fake grader stands at the boundary between the service and the grader
(``grade_submission``): it reads directives from the submission's text, then
scores with the grader's own ``score_checks`` and ``build_result``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from api.config import Settings
from api.db import Database, migrate
from api.jobs.state import FINISHED
from api.models import Job
from api.service import Service
from api.teams import create_team
from grader.challenge import Challenge
from grader.errors import BadSubmission
from grader.grading import GradeOptions
from grader.judge.contracts import CheckRecord
from grader.results import GradeResult, build_result
from grader.scoring import score_checks

# ----------------------------------------------------------------------------- PostgreSQL


def _postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").is_file():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A URL of a PostgreSQL database whose user may create databases."""
    configured = os.environ.get("CVGRADE_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    binaries = _postgres_bin()
    if binaries is None:
        _unavailable("PostgreSQL is not installed (apt-get install postgresql) and CVGRADE_TEST_POSTGRES_URL is unset")
    assert binaries is not None
    user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
    folder = Path(tempfile.mkdtemp(prefix="cvgrade-test-postgres-"))
    if user:
        shutil.chown(folder, user)
    data, port = folder / "data", _free_port()
    subprocess.run([binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C", "--no-sync"], user=user, check=True, capture_output=True)
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [binaries / "postgres", "-D", data, "-p", str(port), "-k", folder, "-c", "listen_addresses=127.0.0.1",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=300"],
        user=user, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        _wait_for_postgres(url, server, folder / "server.log")
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_postgres(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            pytest.fail(f"PostgreSQL did not start: {log.read_text(errors='replace')[-2000:]}")
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not answer within 60 s: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]  # our own names, made here


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A migrated database that each test's database is copied from (much faster than migrating)."""
    name = f"cvgrade_template_{os.getpid()}"
    _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}"')
    _admin(postgres_server, f'CREATE DATABASE "{name}"')
    database = Database(make_url(postgres_server).set(database=name).render_as_string(hide_password=False))
    migrate(database)
    database.dispose()
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test's database is a copy of (much faster than migrating)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "cvgrade.db"
    database = Database(f"sqlite:///{path}")
    migrate(database)
    database.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database of each kind, fresh for the test."""
    if request.param == "sqlite":
        path = tmp_path / "cvgrade.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    name = f"cvgrade_test_{uuid.uuid4().hex[:12]}"
    _admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------------------- the challenge

TINY_HIDDEN = {"test_add.py": (
    "HIDDEN_SOURCE_MARKER = 'never shown'\n"
    "def test_adds(candidate):\n    assert candidate.add(1, 2) == 3, 'add(1, 2) is wrong'\n"
    "def test_secret(candidate):\n    assert candidate.add(20, 22) == 42, 'wrong'\n"
    "def test_later(candidate):\n    assert candidate.add(0, 0) == 0, 'wrong'\n"
)}
TINY_CHECKS: list[dict[str, object]] = [
    {"name": "adds", "test": "test_add.py::test_adds", "points": 6, "gate": True,
     "description": "add(1, 2) is 3"},
    {"name": "secret", "test": "test_add.py::test_secret", "points": 3, "visibility": "hidden",
     "description": "HIDDEN DESCRIPTION of a secret property"},
    {"name": "later", "test": "test_add.py::test_later", "points": 1, "visibility": "after_due_date",
     "description": "add(0, 0) is 0"},
]


@pytest.fixture
def challenges_dir(challenge_factory: Any) -> Path:
    folder: Path = challenge_factory(TINY_HIDDEN, TINY_CHECKS)
    return folder.parent


# ----------------------------------------------------------------------------- the fake grader


class FakeGrader:
    """Grades by the directives in a submission's text (scored by the grader's real scoring):

    ``pass:NAME`` or ``pass:all`` (checks that pass), ``INFRASTRUCTURE`` (our failure),
    ``REFUSE`` (the grader refuses the submission), ``BUG`` (an exception of ours),
    ``BLOCK`` (wait until ``release()``), ``ECHO`` (failing checks' messages quote the
    submission, as a candidate's exception message would), ``CHARTS`` (the result has a
    latency distribution and two gauges, as checks record them), ``INCONCLUSIVE:N`` (the
    first N gradings of it find the machine too busy to time a check).
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._released = threading.Event()
        self.started = threading.Event()

    def release(self) -> None:
        self._released.set()

    def __call__(self, submission: Path, challenge: Challenge, options: GradeOptions) -> GradeResult:
        text = submission.read_bytes().decode("utf-8", "replace")
        self.calls.append(submission.name)
        self.started.set()
        busy = re.search(r"INCONCLUSIVE:(\d+)", text)
        inconclusive = busy is not None and self.calls.count(submission.name) <= int(busy.group(1))
        if "BLOCK" in text:
            assert self._released.wait(30), "the test never released the grader"
        if "REFUSE" in text:
            raise BadSubmission(f"{submission.name}: the grader refuses this submission")
        if "BUG" in text:
            raise RuntimeError("a bug in the grader")
        records = {}
        for check in challenge.spec.checks:
            passed = "pass:all" in text or f"pass:{check.name}" in text
            records[check.test] = {
                "passed": passed, "outcome": "ok" if passed else "raised",
                "message": "" if passed else f"{check.name}: expected SECRET_EXPECTED_{check.name}"
                + (f"; the candidate's code raised: {text}" if "ECHO" in text else ""),
                "detail": "", "duration_s": 0.01, "metrics": {f"{check.name}.ms": len(text)},
            }
            if inconclusive:
                records[check.test].update(passed=False, outcome="inconclusive", infrastructure=True,
                                           message="timing inconclusive: the machine was too busy (fake)")
        judge_error = "the sandbox could not start (fake)" if "INFRASTRUCTURE" in text else None
        read = {test: CheckRecord.model_validate({"nodeid": test, **fields}) for test, fields in records.items()}
        verdict = score_checks(challenge.spec.checks, read, challenge.spec.challenge.pass_mark,
                               judge_error=judge_error)
        metrics: dict[str, Any] = {"worker_starts": 1}
        for record in records.values():
            metrics.update(record["metrics"])
        return build_result(
            verdict, metrics=metrics, limits=challenge.spec.limits.model_dump(),
            environment={"fake": True}, challenge={"id": challenge.id, "version": challenge.version,
                                                   "title": challenge.spec.challenge.title, "checks": "hidden"},
            submission={"name": submission.name, "kind": "py", "sha256": "", "size_bytes": len(text)},
            feedback=["a note for the candidate", "sandbox: a note about our machine"], duration_s=0.1,
            charts=SAMPLE_CHARTS if "CHARTS" in text else None,
        )


SAMPLE_CHARTS: list[dict[str, Any]] = [
    {"check": "adds", "kind": "distribution", "title": "latency per call", "label": "candidate", "unit": "ms",
     "values": [4.0 + 0.05 * (i % 40) for i in range(120)], "target": 10.0,
     "baseline": [8.0 + 0.1 * (i % 40) for i in range(120)], "baseline_label": "original model"},
    {"check": "secret", "kind": "gauge", "title": "top-1 accuracy", "unit": "", "value": 0.91, "threshold": 0.8,
     "higher_is_better": True, "maximum": 1.0},
    {"check": "secret", "kind": "gauge", "title": "training time", "unit": "s", "value": 42.0, "threshold": 60.0,
     "higher_is_better": False, "maximum": None},
]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


# ----------------------------------------------------------------------------- the service


@dataclasses.dataclass
class Candidate:
    api: Api
    token: str
    invitation: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def upload(self, content: str | bytes, name: str = "solution.py", key: str | None = None) -> Any:
        data = content.encode() if isinstance(content, str) else content
        headers = dict(self.headers, **({"Idempotency-Key": key} if key else {}))
        return self.api.client.post("/api/v1/candidate/submissions", headers=headers, files={"file": (name, data)})

    def get(self, path: str) -> Any:
        return self.api.client.get(f"/api/v1/candidate{path}", headers=self.headers)


@dataclasses.dataclass
class TeamClient:
    api: Api
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.api.client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.api.client.post(f"/api/v1{path}", headers=self.headers, **kwargs)

    def invite(self, candidate: str = "ada@example.com", **fields: Any) -> Candidate:
        body = {"challenge_id": "tiny", "candidate": candidate,
                "deadline": (self.api.clock() + timedelta(days=7)).isoformat(), **fields}
        response = self.post("/invitations", json=body)
        assert response.status_code == 201, response.text
        invitation = response.json()
        return Candidate(self.api, invitation.pop("token"), invitation)


@dataclasses.dataclass
class Api:
    client: TestClient
    service: Service
    clock: FakeClock
    grader: FakeGrader

    def team(self, name: str = "acme") -> TeamClient:
        with self.service.db.write() as session:
            _, _, key = create_team(session, name, self.clock())
            session.commit()
        return TeamClient(self, name, key)

    def wait_for_jobs(self, timeout_s: float = 20) -> None:
        """Until no job is queued or running, and every submission is fingerprinted for the similarity check
        (done here at once rather than by the service's keeper thread a moment later, so that no test sees
        the database change under it)."""
        from api.similarity import SimilarityKeeper

        deadline = time.monotonic() + timeout_s
        while True:
            with self.service.db.read() as session:
                pending = session.scalar(select(func.count()).select_from(Job).where(Job.state.not_in(FINISHED)))
            if not pending:
                SimilarityKeeper(self.service).catch_up()
                return
            assert time.monotonic() < deadline, f"{pending} job(s) still pending after {timeout_s} s"
            time.sleep(0.05)

    def stored_files(self) -> int:
        return sum(1 for path in self.service.settings.uploads_dir.glob("*/*") if path.is_file())


def make_settings(tmp_path: Path, database_url: str, challenges_dir: Path, **changes: Any) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, challenges_dir=challenges_dir,
                        max_upload_bytes=1024 * 1024, max_json_bytes=64 * 1024, heartbeat_s=0.2,
                        stale_after_s=2.0, poll_s=0.1, backend="local", isolation="process",
                        parse_check=False)  # the fake grader's directives ("pass:all") are not Python
    return dataclasses.replace(settings, **changes)


ApiFactory = Callable[..., Api]


@pytest.fixture
def api_factory(tmp_path: Path, database_url: str, challenges_dir: Path) -> Iterator[ApiFactory]:
    """Start a service (TestClient, lifespan and workers included); several may share the database."""
    from api.app import create_app

    stack = contextlib.ExitStack()

    def start(*, workers: bool = True, clock: FakeClock | None = None, **changes: Any) -> Api:
        settings = make_settings(tmp_path, database_url, challenges_dir, **changes)
        grader, clock = FakeGrader(), clock or FakeClock()
        app = create_app(settings, grade=grader, stop_gradings=grader.release, clock=clock, workers=workers)
        client = stack.enter_context(TestClient(app))
        stack.callback(grader.release)  # a blocked fake grader must not hold up the shutdown
        return Api(client, app.state.service, clock, grader)

    with stack:
        yield start


@pytest.fixture
def api(api_factory: ApiFactory) -> Api:
    return api_factory()
