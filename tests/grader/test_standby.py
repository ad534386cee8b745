"""Standbys: a judge whose workers started before its submission was known (grader/standby.py).

Real gradings on both backends of a small challenge whose one function reports, from inside the
candidate's worker, how long that worker had been running when the submission was imported, and
what it can see of its folder and of ``/tmp``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from grader import standby
from grader.challenge import Challenge, load_challenge
from grader.grading import GradeOptions, grade_submission, keep_standby
from grader.results import GradeResult
from harness import cgroups
from tests.conftest import processes_with, running

PROBE = textwrap.dedent(
    """
    import os
    import time


    def _age_s():
        fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
        return time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")


    AGE_AT_IMPORT_S = _age_s()
    WHO = {who!r}
    time.sleep({import_s})
    try:
        with open("/tmp/left-by-" + WHO, "w") as scratch:
            scratch.write("x")
    except OSError:
        pass


    def probe():
        return {{"who": WHO, "age_at_import_s": AGE_AT_IMPORT_S, "files": sorted(os.listdir(".")),
                 "tmp": sorted(os.listdir("/tmp"))}}
    """
)
PROBE_CHECKS = textwrap.dedent(
    """
    import json
    from pathlib import Path


    def test_probe(candidate):
        seen = candidate.probe()
        with Path({report!r}).open("a") as report:
            report.write(json.dumps(seen) + "\\n")
        assert seen["who"] != "nobody"
    """
)


def _probe(who: str, import_s: float = 0.0) -> str:
    return PROBE.format(who=who, import_s=import_s)


def _probe_challenge(challenge_factory, report: Path, *, limits: str = "", challenge_id: str = "probe") -> Challenge:
    folder = challenge_factory({"test_probe.py": PROBE_CHECKS.format(report=str(report))},
                               [{"name": "probe", "test": "test_probe.py::test_probe", "points": 1}],
                               challenge_id=challenge_id, functions=(("probe", []),),
                               reference=_probe("reference"), starter=_probe("nobody"), limits=limits)
    return load_challenge(folder)


def _folder_submission(root: Path, who: str, *, import_s: float = 0.0) -> Path:
    folder = root / who
    folder.mkdir()
    # A module of its own beside the solution, imported by it, as engineers split their code.
    (folder / "solution.py").write_text(f"from {who}_helper import WHO as HELPED\n" + _probe(who, import_s))
    (folder / f"{who}_helper.py").write_text(f"WHO = {who!r}\n")
    (folder / f"{who}-only.txt").write_text(who)
    return folder


def _prestarted(result: GradeResult) -> bool:
    return bool(result.environment["judge"]["workers_started_before_submission"])


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _containers_of(judge_pid: int) -> list[str]:
    from harness.containers import LABEL, OWNER_LABEL, docker_client, owner_id

    client = docker_client()
    return [container.id for container in client.containers.list(
        all=True, filters={"label": [LABEL, f"{OWNER_LABEL}={owner_id(judge_pid)}"]})]


@pytest.fixture(autouse=True)
def _no_standby_left() -> None:
    yield
    standby.discard_all()


def test_the_next_grading_takes_the_standby_with_only_its_own_submission_in_view(
    backend: str, challenge_factory, submission_dir: Path, tmp_path: Path,
) -> None:
    report = tmp_path / "seen.jsonl"
    challenge = _probe_challenge(challenge_factory, report)
    options = GradeOptions(backend=backend)  # type: ignore[arg-type]
    fresh = grade_submission(challenge.reference_dir / "solution.py", challenge, options)
    assert keep_standby(challenge, options) is not None
    first = grade_submission(_folder_submission(submission_dir, "first"), challenge, options)
    assert keep_standby(challenge, options) is not None
    waited_s = 5.0
    time.sleep(waited_s + 1)  # the standby's worker (started within a second) runs all along, with no submission
    second = grade_submission(_folder_submission(submission_dir, "second"), challenge, options)
    assert [fresh.passed, first.passed, second.passed] == [True, True, True]
    assert [_prestarted(fresh), _prestarted(first), _prestarted(second)] == [False, True, True]
    _, seen_first, seen_second = (json.loads(line) for line in report.read_text().splitlines())
    assert seen_second["who"] == "second"
    assert seen_second["age_at_import_s"] >= waited_s, "the worker was not started before the submission was known"
    assert seen_second["files"] == ["second-only.txt", "second_helper.py", "solution.py"]  # nothing of the first's
    assert "left-by-first" not in seen_second["tmp"]
    assert seen_first["files"] == ["first-only.txt", "first_helper.py", "solution.py"]
    assert "left-by-first" in seen_first["tmp"]  # the probe can write there: its absence above means something


def test_a_notebook_is_handed_to_the_standbys_worker_cell_by_cell(
    challenge_factory, submission_dir: Path, tmp_path: Path, bwrap: None,
) -> None:
    report = tmp_path / "seen.jsonl"
    challenge = _probe_challenge(challenge_factory, report)
    options = GradeOptions(backend="local")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# my probe"), nbformat.v4.new_code_cell(_probe("notebook"))]
    path = submission_dir / "probe.ipynb"
    nbformat.write(notebook, path)
    assert keep_standby(challenge, options) is not None
    result = grade_submission(path, challenge, options)
    assert result.passed and _prestarted(result)
    assert json.loads(report.read_text())["who"] == "notebook"


def test_the_setup_limit_counts_from_the_handover_not_from_the_workers_start(
    challenge_factory, submission_dir: Path, tmp_path: Path, bwrap: None,
) -> None:
    report = tmp_path / "seen.jsonl"
    challenge = _probe_challenge(challenge_factory, report, limits="setup_timeout_s = 3")
    options = GradeOptions(backend="local")
    assert keep_standby(challenge, options) is not None
    time.sleep(5)  # longer than the setup limit, before the submission is known
    in_time = grade_submission(_folder_submission(submission_dir, "quick", import_s=1.0), challenge, options)
    assert in_time.passed and _prestarted(in_time)
    assert keep_standby(challenge, options) is not None
    too_slow = grade_submission(_folder_submission(submission_dir, "slow", import_s=8.0), challenge, options)
    assert _prestarted(too_slow) and not too_slow.passed
    assert too_slow.tests[0].outcome == "timed_out", too_slow.tests[0].output
    assert "could not be imported" in too_slow.tests[0].output and "3 s" in too_slow.tests[0].output


def test_a_standby_that_is_not_used_is_gone_with_its_workers_and_folders(
    backend: str, challenge_factory, tmp_path: Path,
) -> None:
    first = _probe_challenge(challenge_factory, tmp_path / "first.jsonl", challenge_id="first")
    other = _probe_challenge(challenge_factory, tmp_path / "other.jsonl", challenge_id="other")
    options = GradeOptions(backend=backend)  # type: ignore[arg-type]
    workers_before = set(processes_with("candidate_worker.py"))
    kept = keep_standby(first, options)
    assert kept is not None
    judge = kept.judge.process.pid

    def its_workers() -> set[int]:
        return set(processes_with("candidate_worker.py")) - workers_before

    if backend == "docker":
        _wait_until(lambda: _containers_of(judge), 120, "the standby's worker container never started")
    else:
        _wait_until(its_workers, 120, "the standby's worker never started")
    started_workers = its_workers()
    replacing = keep_standby(other, options)  # another challenge's gradings from now on: the first one goes
    assert replacing is not None and standby.waiting(kept.key) is None
    _wait_until(lambda: not running(judge), 60, "the unused standby's judge did not end")
    assert not any(running(pid) for pid in started_workers), "an unused standby's worker outlived it"
    assert not kept.slot.exists() and not kept.judge_dir.exists()
    assert kept.reference is not None and not kept.reference.path.exists()
    if backend == "docker":
        assert _containers_of(judge) == []
    elif cgroups.detect() is not None:
        assert cgroups.remove_worker_groups_of(judge) == 0  # none was left to remove
    standby.discard_all()
    assert not running(replacing.judge.process.pid)


def test_a_grading_with_other_options_does_not_take_the_standby(challenge_factory, tmp_path: Path) -> None:
    challenge = _probe_challenge(challenge_factory, tmp_path / "seen.jsonl")
    kept = keep_standby(challenge, GradeOptions(backend="local", isolation="bwrap"))
    assert kept is not None
    result = grade_submission(challenge.reference_dir / "solution.py", challenge,
                              GradeOptions(backend="local", isolation="process"))
    assert result.passed and not _prestarted(result)
    assert standby.waiting(kept.key) is kept and running(kept.judge.process.pid)  # still there for its own kind


def test_a_standby_started_for_other_limits_is_ended_and_the_grading_runs_as_without_one(
    challenge_factory, tmp_path: Path, bwrap: None,
) -> None:
    challenge = _probe_challenge(challenge_factory, tmp_path / "seen.jsonl", limits="memory_mb = 2048")
    options = GradeOptions(backend="local")
    kept = keep_standby(challenge, options)
    assert kept is not None
    # The challenge's author changes a limit and keeps its version: the next grading has the
    # standby's key, but not its workers.
    toml = challenge.root / "challenge.toml"
    toml.write_text(toml.read_text().replace("memory_mb = 2048", "memory_mb = 3072"))
    changed = load_challenge(challenge.root)
    result = grade_submission(changed.reference_dir / "solution.py", changed, options)
    assert result.passed and not _prestarted(result), result.error
    assert result.limits["memory_mb"] == 3072
    assert not running(kept.judge.process.pid)
    assert not kept.slot.exists() and not kept.judge_dir.exists()


GRADER_WITH_A_STANDBY = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    from grader.challenge import load_challenge
    from grader.grading import GradeOptions, keep_standby

    kept = keep_standby(load_challenge(Path(sys.argv[1])), GradeOptions(backend="local"))
    Path(sys.argv[2]).write_text(str(kept.judge.process.pid))
    time.sleep(600)
    """
)


def test_a_standby_ends_with_its_grader_when_the_grader_is_killed(
    challenge_factory, tmp_path: Path, bwrap: None,
) -> None:
    challenge = _probe_challenge(challenge_factory, tmp_path / "seen.jsonl")
    script, judge_file = tmp_path / "grader_script.py", tmp_path / "judge.pid"
    script.write_text(GRADER_WITH_A_STANDBY)
    workers_before = set(processes_with("candidate_worker.py"))
    grader = subprocess.Popen([sys.executable, str(script), str(challenge.root), str(judge_file)],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        _wait_until(lambda: judge_file.is_file() and judge_file.read_text(), 120, "no standby was started")
        _wait_until(lambda: set(processes_with("candidate_worker.py")) - workers_before, 120,
                    "the standby's worker never started")
        workers = set(processes_with("candidate_worker.py")) - workers_before
        judge = int(judge_file.read_text())
    finally:
        os.kill(grader.pid, signal.SIGKILL)
        grader.wait()
    _wait_until(lambda: not running(judge), 60, "the standby's judge outlived its grader")
    _wait_until(lambda: not any(running(pid) for pid in workers), 30, "the standby's worker outlived its grader")
