"""While a check times the reference, the candidate's processes are frozen, whatever the check does.

Real judge, real workers (local backend, cgroup freezer). The candidate spins in a thread and
counts; the check compares how far it counted while the reference was timed against an
unfrozen wait as long. Counters, not times.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from harness import cgroups

SOLUTION = textwrap.dedent(
    """
    import threading
    import time

    COUNT = [0]


    def _spin():
        while True:
            COUNT[0] += 1


    def start():
        threading.Thread(target=_spin, daemon=True).start()
        return True


    def count():
        return COUNT[0]


    def idle(seconds):
        time.sleep(seconds)
        return seconds
    """
)
CHECKS = textwrap.dedent(
    """
    import time

    def test_reference_timed_alone(candidate, reference, record):
        candidate.start()
        time.sleep(0.5)
        first = candidate.count()
        time.sleep(1.5)  # the candidate runs meanwhile
        second = candidate.count()
        reference.timed("idle", 1.5)  # as long, timing the reference: the candidate must be frozen
        third = candidate.count()
        record.metric("counted_running", second - first)
        record.metric("counted_while_reference_timed", third - second)
    """
)


def test_timing_the_reference_freezes_the_candidate(challenge_factory, submission_dir: Path, bwrap: None) -> None:
    if cgroups.detect() is None:
        pytest.skip("no writable cgroup hierarchy here: the local backend cannot freeze")
    challenge = challenge_factory(
        {"test_freeze.py": CHECKS}, [{"name": "alone", "test": "test_freeze.py::test_reference_timed_alone",
                                      "points": 1}],
        functions=(("start", []), ("count", []), ("idle", ["seconds"])), reference=SOLUTION,
    )
    path = submission_dir / "solution.py"
    path.write_text(SOLUTION)
    result = grade_submission(path, load_challenge(challenge), GradeOptions(backend="local"))
    assert result.status == "graded" and result.passed, result.tests[0].output
    running, frozen = result.metrics["counted_running"], result.metrics["counted_while_reference_timed"]
    assert running > 0
    assert frozen * 4 < running, f"the candidate counted {frozen} while the reference was timed, {running} running"
