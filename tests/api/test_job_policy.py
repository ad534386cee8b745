"""The one rule for grading a job (``api.jobs.policy.grade_job``), as both runners apply it.

Real gradings of tiny submissions with the local sandbox: a graded submission is ``done`` and
charged whatever its score; a submission the grader refuses is ``failed`` and charged; our own
failure (a changed challenge, a sandbox that is gone, a grader that crashes) is ``not_gradable``
and never charged. ``pool`` is the service's in-process path (``grade_job`` with the stored file);
``fleet`` is a fleet grader's (``grade_payload``: the JSON payload in, the JSON reply out).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from api.jobs.dispatcher import CeleryDispatcher
from api.jobs.fleet_grader import FleetGraderSettings, grade_payload, resolve_settings
from api.jobs.messages import GradeJobPayload, GradeJobReply
from api.jobs.policy import GradeFunction, grade_job
from api.jobs.queue import JobOutcome
from api.jobs.state import JobState
from grader import standby
from grader.challenge import Challenge, load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult

CHECKS = "def test_adds(candidate):\n    assert candidate.add(1, 2) == 3, 'add(1, 2) gives the wrong sum'\n"
ADD = [{"name": "adds", "test": "test_add.py::test_adds", "points": 10}]
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"

Runner = Callable[..., JobOutcome]


def through_pool(challenge_dir: Path, submission: Path, *, version: str = "1.0.0", backend: str = "local",
                 grade: GradeFunction = grade_submission) -> JobOutcome:
    return grade_job(job_id=1, challenge_version=version, challenge=lambda: load_challenge(challenge_dir),
                     submission=lambda: contextlib.nullcontext(submission), grade=grade,
                     options=GradeOptions(backend=backend))  # type: ignore[arg-type]


def through_fleet(challenge_dir: Path, submission: Path, *, version: str = "1.0.0", backend: str = "local",
                  grade: GradeFunction = grade_submission) -> JobOutcome:
    payload = GradeJobPayload.for_job(job_id=1, run=1, challenge=load_challenge(challenge_dir),
                                      filename=submission.name, content=submission.read_bytes())
    sent = json.loads(json.dumps(payload.model_copy(update={"challenge_version": version}).model_dump(mode="json")))
    settings = FleetGraderSettings(backend=backend, challenges_dir=challenge_dir.parent)  # type: ignore[arg-type]
    reply = grade_payload(GradeJobPayload.model_validate(sent), settings, worker="grader-7", grade=grade)
    return GradeJobReply.model_validate(json.loads(json.dumps(reply.model_dump(mode="json")))).outcome()


@pytest.fixture(params=["pool", "fleet"])
def run(request: pytest.FixtureRequest) -> Runner:
    return through_pool if request.param == "pool" else through_fleet


@pytest.fixture
def challenge(challenge_factory: Callable[..., Path]) -> Path:
    return challenge_factory({"test_add.py": CHECKS}, ADD)


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def test_a_graded_submission_is_done_and_charged_whatever_its_score(
    run: Runner, challenge: Path, submission_dir: Path
) -> None:
    right = run(challenge, write(submission_dir, "solution.py", RIGHT))
    assert (right.state, right.charged, right.error) == (JobState.DONE, True, None)
    assert right.result is not None and (right.result.score, right.result.passed) == (10, True)
    wrong = run(challenge, write(submission_dir, "solution.py", WRONG))
    assert (wrong.state, wrong.charged) == (JobState.DONE, True)  # the candidate's failure is a result
    assert wrong.result is not None and (wrong.result.score, wrong.result.passed) == (0, False)


def _prestarted(outcome: JobOutcome) -> bool:
    assert outcome.result is not None
    return bool(outcome.result.environment["judge"]["workers_started_before_submission"])


def test_after_each_job_the_next_one_of_its_challenge_finds_its_workers_started(
    run: Runner, challenge: Path, submission_dir: Path
) -> None:
    try:
        first = run(challenge, write(submission_dir, "solution.py", RIGHT))
        second = run(challenge, write(submission_dir, "solution.py", WRONG))  # a standby kept after the first
        assert [_prestarted(first), _prestarted(second)] == [False, True]
        assert second.result is not None and (second.result.score, second.result.passed) == (0, False)
        standby.discard_all()

        def graded_by_a_test(path: Path, loaded: Challenge, options: GradeOptions) -> GradeResult:
            return grade_submission(path, loaded, options)

        run(challenge, write(submission_dir, "solution.py", RIGHT), grade=graded_by_a_test)  # keeps none
        assert not _prestarted(run(challenge, write(submission_dir, "solution.py", RIGHT)))
    finally:
        standby.discard_all()


def test_a_submission_the_grader_refuses_is_failed_and_charged(
    run: Runner, challenge: Path, submission_dir: Path
) -> None:
    outcome = run(challenge, write(submission_dir, "solution.ipynb", "{ this is not a notebook"))
    assert (outcome.state, outcome.charged, outcome.result) == (JobState.FAILED, True, None)
    assert outcome.error and "solution.ipynb" in outcome.error


def test_a_changed_challenge_is_not_gradable_and_not_charged(
    run: Runner, challenge: Path, submission_dir: Path
) -> None:
    outcome = run(challenge, write(submission_dir, "solution.py", RIGHT), version="0.9.0")
    assert (outcome.state, outcome.charged, outcome.result) == (JobState.NOT_GRADABLE, False, None)
    assert "is now version 1.0.0" in (outcome.error or "") and "made for version 0.9.0" in (outcome.error or "")


def test_a_sandbox_that_is_gone_is_not_gradable_and_not_charged(
    run: Runner, challenge: Path, submission_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine answers there
    outcome = run(challenge, write(submission_dir, "solution.py", RIGHT), backend="docker")
    assert (outcome.state, outcome.charged, outcome.result) == (JobState.NOT_GRADABLE, False, None)
    assert "Docker" in (outcome.error or "")


def test_a_grader_that_crashes_is_not_gradable_and_not_charged(
    run: Runner, challenge: Path, submission_dir: Path
) -> None:
    def crashing(_submission: Path, _challenge: Challenge, _options: GradeOptions) -> GradeResult:
        raise RuntimeError("the judge's pipe broke")

    outcome = run(challenge, write(submission_dir, "solution.py", RIGHT), grade=crashing)
    assert (outcome.state, outcome.charged, outcome.result) == (JobState.NOT_GRADABLE, False, None)
    assert "RuntimeError: the judge's pipe broke" in (outcome.error or "")


def test_an_infrastructure_error_in_the_result_is_not_gradable_and_not_charged(
    run: Runner, challenge: Path, submission_dir: Path
) -> None:
    graded = through_pool(challenge, write(submission_dir, "solution.py", RIGHT)).result
    assert graded is not None

    def errored(_submission: Path, _challenge: Challenge, _options: GradeOptions) -> GradeResult:
        return graded.model_copy(update={"status": "error", "error": "the judge ran out of memory"})

    outcome = run(challenge, write(submission_dir, "solution.py", RIGHT), grade=errored)
    assert (outcome.state, outcome.charged, outcome.error) == (JobState.NOT_GRADABLE, False,
                                                               "the judge ran out of memory")
    assert outcome.result is not None  # kept, for the team to read


def test_the_service_refuses_a_reply_that_is_not_a_finished_state() -> None:
    for raw in ({"version": 1, "state": "running", "result": None, "worker": "w"}, ["done"], {"state": "done"}):
        outcome = CeleryDispatcher._outcome(raw)
        assert (outcome.state, outcome.charged, outcome.error) == (
            JobState.NOT_GRADABLE, False, "the worker sent a malformed reply")


def test_a_fleet_graders_settings_are_its_flags_then_the_environment() -> None:
    env = {"CVGRADE_BACKEND": "docker", "CVGRADE_ISOLATION": "process", "CVGRADE_CHALLENGES_DIR": "/srv/challenges"}
    assert resolve_settings(env=env) == FleetGraderSettings("docker", "process", Path("/srv/challenges"))
    assert resolve_settings(backend="local", isolation="bwrap", env=env) == \
        FleetGraderSettings("local", "bwrap", Path("/srv/challenges"))
    assert resolve_settings(env={}) == FleetGraderSettings()
