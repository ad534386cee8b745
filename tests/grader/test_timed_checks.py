"""Timed checks that cannot decide are tried again, each try reported; still undecided is not gradable.

Real judge and sandboxed worker (local backend). The checks count their own tries in a file
beside the challenge (they run in the judge, which is trusted).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult

TIMED_CHECKS = textwrap.dedent(
    """
    from pathlib import Path

    from grader.judgekit import TimingInconclusive

    TRIES = Path(__file__).parent.parent / "tries-{name}"


    def _count():
        done = int(TRIES.read_text()) if TRIES.exists() else 0
        TRIES.write_text(str(done + 1))
        return done + 1


    def test_busy_once(candidate):
        candidate.timed("add", 1, 2)
        if _count() == 1:
            raise TimingInconclusive("timing inconclusive: the machine was too busy (a test's pretence)")
        assert candidate.add(1, 2) == 3, "wrong sum"


    def test_always_busy(candidate):
        candidate.timed("add", 1, 2)
        _count()
        raise TimingInconclusive("timing inconclusive: the machine was too busy (a test's pretence)")
    """
)


def timed_challenge(challenge_factory, test: str) -> Path:
    name = test.removeprefix("test_")
    checks = TIMED_CHECKS.replace("{name}", name)
    return challenge_factory({"test_timed.py": checks},
                             [{"name": name, "test": f"test_timed.py::{test}", "points": 1, "timed": True}],
                             challenge_id=name.replace("_", "-"))


def grade(challenge: Path, folder: Path) -> GradeResult:
    path = folder / "solution.py"
    path.write_text("def add(a, b):\n    return a + b\n")
    return grade_submission(path, load_challenge(challenge), GradeOptions(backend="local"))


def test_an_inconclusive_timing_is_tried_again_and_the_tries_are_reported(
    challenge_factory, submission_dir: Path, bwrap: None
) -> None:
    challenge = timed_challenge(challenge_factory, "test_busy_once")
    result = grade(challenge, submission_dir)
    assert (result.status, result.passed) == ("graded", True)
    assert (challenge / "tries-busy_once").read_text() == "2"
    assert result.metrics["timing_tries"] == 2
    assert result.metrics["timing_try_1"].startswith("inconclusive after ")
    assert " at load " in result.metrics["timing_try_1"] and "too busy" in result.metrics["timing_try_1"]
    assert result.metrics["timing_try_2"].startswith("decided after ")


def test_a_timing_still_inconclusive_after_three_tries_is_not_gradable(
    challenge_factory, submission_dir: Path, bwrap: None
) -> None:
    challenge = timed_challenge(challenge_factory, "test_always_busy")
    result = grade(challenge, submission_dir)
    assert (result.status, result.score) == ("error", None)  # not charged to the candidate
    assert result.exit_code == 3
    assert (challenge / "tries-always_busy").read_text() == "3"
    (test,) = result.tests
    assert test.outcome == "inconclusive"
    assert "tried 3 time(s)" in test.output and "load average" in test.output
    assert result.inconclusive, "the service must know to try again later"


def test_an_untimed_check_is_never_retried(challenge_factory, submission_dir: Path, bwrap: None) -> None:
    checks = TIMED_CHECKS.replace("{name}", "untimed")
    challenge = challenge_factory({"test_timed.py": checks},
                                  [{"name": "busy", "test": "test_timed.py::test_busy_once", "points": 1}],
                                  challenge_id="untimed")
    result = grade(challenge, submission_dir)
    assert (challenge / "tries-untimed").read_text() == "1"
    assert result.status == "error" and "timing_tries" not in result.metrics
