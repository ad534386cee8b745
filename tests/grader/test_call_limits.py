"""Per-call limits: a hung function costs one limit, not one check limit per check that uses it.

Real judge, real sandboxed workers (local backend with bubblewrap), real pytest.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult

HUNG_CHECKS = textwrap.dedent(
    """
    import pytest

    def test_first(candidate):
        assert candidate.stuck() == 1, "stuck() is wrong"

    def test_second(candidate):
        assert candidate.stuck() == 1, "stuck() is wrong"

    def test_other(candidate):
        assert candidate.add(1, 2) == 3, "add is wrong"

    @pytest.mark.fresh_worker
    def test_fresh(candidate):
        assert candidate.stuck() == 1, "stuck() is wrong"
    """
)
HUNG = [
    {"name": "first", "test": "test_stuck.py::test_first", "points": 1},
    {"name": "second", "test": "test_stuck.py::test_second", "points": 1},
    {"name": "other", "test": "test_stuck.py::test_other", "points": 1},
    {"name": "fresh", "test": "test_stuck.py::test_fresh", "points": 1},
]
FUNCTIONS = (("add", ["a", "b"]), ("stuck", []))
REFERENCE = "def add(a, b):\n    return a + b\n\ndef stuck():\n    return 1\n"
HANGS = "import time\n\ndef add(a, b):\n    return a + b\n\ndef stuck():\n    while True:\n        time.sleep(1)\n"


def grade(challenge: Path, source: str, folder: Path) -> GradeResult:
    path = folder / "solution.py"
    path.write_text(source)
    return grade_submission(path, load_challenge(challenge), GradeOptions(backend="local"))


def outputs(result: GradeResult) -> dict[str, str]:
    return {test.name: test.output for test in result.tests}


@pytest.fixture
def hung_challenge(challenge_factory, bwrap: None) -> Path:
    return challenge_factory({"test_stuck.py": HUNG_CHECKS}, HUNG, functions=FUNCTIONS, reference=REFERENCE,
                             limits="check_timeout_s = 120\ncall_timeout_s = 3")


def test_a_second_call_to_a_hung_function_fails_at_once_with_the_same_message(
    hung_challenge: Path, submission_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVGRADE_CACHE", str(tmp_path / "cache"))  # nothing calibrated: call_timeout_s applies
    result = grade(hung_challenge, HANGS, submission_dir)
    said = outputs(result)
    first = "stuck() did not return within 3 s in check first; not called again"
    assert said["first"] == first
    assert said["second"] == first, "the second check called the hung function again"
    assert said["other"] == "", "a function that works still works"
    # The second check started no worker: only the first, the one after the time-out
    # (for `other`) and the fresh one the last check asked for.
    assert result.metrics["worker_starts"] == 3
    assert said["fresh"] == "stuck() did not return within 3 s in check fresh; not called again"
    assert {t.name: t.outcome for t in result.tests}["second"] == "timed_out"


def test_per_call_limits_come_from_the_references_own_calls_on_this_machine(
    hung_challenge: Path, submission_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CVGRADE_CACHE", str(cache))
    reference = grade_submission(hung_challenge / "reference" / "solution.py", load_challenge(hung_challenge),
                                 GradeOptions(backend="local"))
    assert reference.passed
    (stored,) = [json.loads(p.read_text()) for p in cache.glob("calibration/tiny@1.0.0/*.json")]
    assert 0 < stored["values"]["call_s.stuck"] < 1  # the reference's slowest call, measured on this machine
    assert {"check_s.first", "check_s.fresh"} <= set(stored["values"])  # the time-left estimate's figures

    result = grade(hung_challenge, HANGS, submission_dir)
    # 20 times a call of well under a second is under the 5 s floor: the floor applies, not call_timeout_s.
    assert outputs(result)["first"] == "stuck() did not return within 5 s in check first; not called again"


def test_a_function_that_is_merely_slow_in_a_speed_check_is_not_taken_for_hung(
    challenge_factory, submission_dir: Path, bwrap: None
) -> None:
    checks = textwrap.dedent(
        """
        def test_fast_enough(candidate):
            candidate.call("slow", 3.0, timeout_s=1)

        def test_later(candidate):
            assert candidate.call("slow", 0.0) == 0.0, "slow is wrong"
        """
    )
    challenge = challenge_factory(
        {"test_slow.py": checks},
        [{"name": "fast_enough", "test": "test_slow.py::test_fast_enough", "points": 1},
         {"name": "later", "test": "test_slow.py::test_later", "points": 1}],
        functions=(("slow", ["seconds"]),),
        reference="import time\n\ndef slow(seconds):\n    time.sleep(seconds)\n    return seconds\n",
    )
    result = grade(challenge, "import time\n\ndef slow(seconds):\n    time.sleep(seconds)\n    return seconds\n",
                   submission_dir)
    said = outputs(result)
    assert said["fast_enough"] == "slow() did not return within 1 s in check fast_enough"
    assert said["later"] == ""  # a limit the check chose says "too slow there", not "hung"


def test_an_instant_import_is_never_blamed_when_a_function_hangs(hung_challenge: Path, submission_dir: Path) -> None:
    result = grade(hung_challenge, HANGS, submission_dir)
    assert not any("could not be imported" in test.output for test in result.tests)
