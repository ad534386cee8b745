"""The judge's own limits, what it accepts per check, and what the candidate sees after held-back data.

Real gradings (the local backend: these are the judge's rules, the same under either) of small
challenges, and the pure rule that charges a judge's limit breach to the check that was running.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from grader.challenge import load_challenge
from grader.feedback import HELD_BACK_NOTE, candidate_feedback
from grader.grading import GradeOptions, JudgeRun, _charge_limit_breach, grade_submission
from grader.judge.contracts import RECORDS_VERSION, CheckRecord, parse_record
from grader.judge.records import JudgeRecords
from grader.results import GradeResult
from harness import cgroups

SIZES_CHECKS = textwrap.dedent(
    """
    def test_small(candidate):
        assert candidate.zeros(1000).numel() == 1000, "zeros(1000) has the wrong size"

    def test_large(candidate):
        assert candidate.zeros(2_000_000).numel() == 2_000_000, "zeros(2000000) has the wrong size"
    """
)
ZEROS = "import torch\n\ndef zeros(n):\n    return torch.zeros(n)\n"


def grade(challenge_dir: Path, source: str, folder: Path) -> GradeResult:
    path = folder / "solution.py"
    path.write_text(source)
    return grade_submission(path, load_challenge(challenge_dir), GradeOptions(backend="local"))


def by_name(result: GradeResult) -> dict[str, Any]:
    return {test.name: test for test in result.tests}


@pytest.mark.usefixtures("bwrap")
def test_each_check_accepts_replies_up_to_its_own_size(challenge_factory, submission_dir: Path) -> None:
    challenge = challenge_factory({"test_sizes.py": SIZES_CHECKS}, [
        {"name": "small", "test": "test_sizes.py::test_small", "points": 1, "max_reply_mb": 1},
        {"name": "large_refused", "test": "test_sizes.py::test_large", "points": 1, "max_reply_mb": 1},
    ], functions=(("zeros", ["n"]),), reference=ZEROS)
    result = grade(challenge, ZEROS, submission_dir)
    checks = by_name(result)
    assert checks["small"].status == "passed"
    refused = checks["large_refused"]
    assert refused.outcome == "bad_value"
    assert "more than the 1 MB this check accepts" in refused.output  # 8 MB of float32 zeros
    relaxed = challenge_factory({"test_sizes.py": SIZES_CHECKS}, [
        {"name": "large", "test": "test_sizes.py::test_large", "points": 1},
    ], functions=(("zeros", ["n"]),), reference=ZEROS, challenge_id="relaxed", limits="max_reply_mb = 9")
    assert grade(relaxed, ZEROS, submission_dir).passed


HELD_BACK_CHECKS = textwrap.dedent(
    """
    def test_before(candidate):
        assert candidate.echo("before") == "never", "echo gave the wrong answer (before)"

    def test_uses_held_back(candidate):
        candidate.echo("HELD-BACK-IMAGE-7")

    def test_after(candidate):
        assert candidate.echo("after") == "never", "echo gave the wrong answer (after)"
    """
)
ECHO = textwrap.dedent(
    """
    SEEN = []

    def echo(text):
        SEEN.append(text)
        if len(SEEN) > 1:
            raise ValueError(" ".join(SEEN))
        return text
    """
)


@pytest.mark.usefixtures("bwrap")
def test_after_held_back_data_the_candidate_sees_the_property_never_the_message(
    challenge_factory, submission_dir: Path
) -> None:
    challenge = challenge_factory({"test_echo.py": HELD_BACK_CHECKS}, [
        {"name": "before", "test": "test_echo.py::test_before", "points": 1, "description": "echo answers"},
        {"name": "uses_held_back", "test": "test_echo.py::test_uses_held_back", "points": 1,
         "held_back_data": True, "description": "echo handles a held-back input"},
        {"name": "after", "test": "test_echo.py::test_after", "points": 1, "description": "echo answers later"},
    ], functions=(("echo", ["text"]),), reference="def echo(text):\n    return text\n")
    result = grade(challenge, ECHO, submission_dir)
    checks = by_name(result)
    assert [checks[name].saw_held_back_data for name in ("before", "uses_held_back", "after")] == [
        False, True, True]
    # The hiring team's result keeps every message; the candidate's view keeps the first only.
    assert "HELD-BACK-IMAGE-7" in checks["uses_held_back"].output
    assert "HELD-BACK-IMAGE-7" in checks["after"].output
    view = candidate_feedback(result, deadline_passed=False, show_scores=True)
    shown = {check["name"]: check for check in view["checks"]}
    assert shown["before"]["message"] == "echo gave the wrong answer (before)"
    assert shown["uses_held_back"]["message"] == "the solution raised an exception"
    assert shown["uses_held_back"]["description"] == "echo handles a held-back input"
    assert shown["after"]["message"] == "the solution raised an exception"
    assert "HELD-BACK-IMAGE-7" not in str(view)
    assert HELD_BACK_NOTE in view["notes"]


@pytest.mark.usefixtures("bwrap")
def test_the_judge_reports_what_it_used_under_its_own_limits(challenge_factory, submission_dir: Path) -> None:
    challenge = challenge_factory({"test_sizes.py": SIZES_CHECKS},
                                  [{"name": "small", "test": "test_sizes.py::test_small", "points": 1}],
                                  functions=(("zeros", ["n"]),), reference=ZEROS, limits="judge_memory_mb = 1500")
    judge = grade(challenge, ZEROS, submission_dir).environment["judge"]
    assert judge["memory_limit_mb"] == 1500 and judge["cpus"] >= 1
    assert judge["limits_enforced_by"] == (f"cgroup {cgroups.detect()}" if cgroups.detect() else "rlimits")
    assert 50 < judge["peak_memory_mb"] < 1500
    assert judge["cpu_s"] > 0


@pytest.mark.usefixtures("bwrap")
def test_without_cgroups_a_reply_past_the_judges_rlimit_is_the_candidates_failure(
    challenge_factory, submission_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "detect", lambda: None)  # the grader's view: the judge gets rlimits
    checks = "def test_huge(candidate):\n    assert candidate.zeros(1_000_000_000).numel() > 0\n"  # 1 GB
    challenge = challenge_factory({"test_huge.py": checks},
                                  [{"name": "huge", "test": "test_huge.py::test_huge", "points": 1}],
                                  functions=(("zeros", ["n"]),), reference=ZEROS,
                                  limits="memory_mb = 3000\nmax_reply_mb = 1024\njudge_memory_mb = 1200")
    result = grade(challenge, "import torch\n\ndef zeros(n):\n    return torch.ones(n, dtype=torch.uint8)\n",
                   submission_dir)
    assert (result.status, result.error) == ("graded", None), result.error
    assert result.environment["judge"]["limits_enforced_by"] == "rlimits"
    (huge,) = result.tests
    assert huge.outcome == "out_of_memory", huge.output
    assert "too large for the judge's memory" in huge.output


def run(*, error: str | None = "the judge failed with exit code -9", memory: bool = True) -> JudgeRun:
    return JudgeRun(error, -9, 1000, "cgroup v1", out_of_memory=memory)


SELECTION = ["test_a.py::test_1", "test_a.py::test_2", "test_a.py::test_3"]
DONE_1 = [{"kind": "started", "nodeid": SELECTION[0]}, {"kind": "check", "nodeid": SELECTION[0], "passed": True}]


def judged(lines: list[dict[str, Any]]) -> JudgeRecords:
    """The records a judge wrote as these lines."""
    return JudgeRecords([parse_record({"version": RECORDS_VERSION, **line}) for line in lines])


def test_a_breach_during_a_check_is_charged_to_that_check_and_the_rest_are_not_run() -> None:
    records = judged([*DONE_1, {"kind": "started", "nodeid": SELECTION[1]}])
    assert _charge_limit_breach(run(), records, SELECTION) is None
    added = {r.nodeid: r for r in records.records[3:] if isinstance(r, CheckRecord)}
    assert added[SELECTION[1]].outcome == "out_of_memory"
    assert "the judge's memory limit of 1000 MB" in added[SELECTION[1]].message
    assert added[SELECTION[2]].message.startswith("not run: the judge stopped at test_2")
    assert not any(r.passed for r in added.values())


@pytest.mark.parametrize(("judge", "records"), [
    pytest.param(run(), DONE_1, id="breach between checks"),
    pytest.param(run(), [], id="breach before any check"),
    pytest.param(run(memory=False), [*DONE_1, {"kind": "started", "nodeid": SELECTION[1]}],
                 id="killed for another reason during a check"),
])
def test_any_other_judge_failure_stays_ours(judge: JudgeRun, records: list[dict[str, Any]]) -> None:
    read = judged(records)
    kept = list(read.records)
    assert _charge_limit_breach(judge, read, SELECTION) == judge.error
    assert read.records == kept


def test_a_judge_that_worked_has_nothing_to_charge() -> None:
    records = judged(DONE_1)
    assert _charge_limit_breach(run(error=None), records, SELECTION) is None
    assert records.records == judged(DONE_1).records
