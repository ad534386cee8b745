"""A worker a grading needs again starts between checks, before the next check asks for it; one not used is gone.

A worker lost in a check (here it exits) is replaced as soon as that check ends, and a
check marked ``fresh_worker`` gets its new worker then too: its start-up overlaps with
the next check's own work. The replacement is a new process for the same submission:
nothing of the lost worker's state reaches it. Whatever was started and not used is
killed with the grading.

Each worker's import starts a child whose command line carries a token of that worker's
own. The checks (ours, run by the judge, outside the sandbox) wait for a new worker's
token to appear in the host's process table *before* calling the candidate: with the
lazy start of before, no new worker exists until that call, and the check fails.

Real judge, real sandboxed workers under both backends (bubblewrap and Docker), real pytest.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult
from tests.conftest import processes_with

SOLUTION = textwrap.dedent(
    """
    import os
    import subprocess
    import sys
    import uuid

    TOKEN = "{marker}-" + uuid.uuid4().hex
    _CHILD = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", TOKEN])
    _count = 0


    def bump():
        global _count
        _count += 1
        return _count


    def token():
        return TOKEN


    def leave():
        os._exit(0)
    """
)

HELPERS = textwrap.dedent(
    """
    import time
    from pathlib import Path

    MARKER = "{marker}"
    SEEN = set()


    def tokens():
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    words = (entry / "cmdline").read_bytes().split(b"\\0")
                except OSError:
                    continue
                found.update(word.decode() for word in words if word.startswith(MARKER.encode() + b"-"))
        return found


    def wait_for_a_new_worker(within_s=120):
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            new = tokens() - SEEN
            if new:
                return new
            time.sleep(0.2)
        return set()
    """
)

REPLACED_AFTER_A_LOSS = textwrap.dedent(
    """
    import pytest

    from replacement_helpers import SEEN, wait_for_a_new_worker


    def test_lose_the_worker(candidate):
        assert candidate.bump() == 1, "a new worker's counter starts at 0"
        SEEN.add(candidate.token())
        candidate.leave()


    def test_replaced_before_it_is_called(candidate):
        started = wait_for_a_new_worker()  # the candidate is not called before this
        assert started, "no worker was started for this check before its first call"
        assert candidate.token() in started, "the check was not given the worker started for it"
        assert candidate.bump() == 1, "the replacement kept the lost worker's state"
        SEEN.add(candidate.token())


    @pytest.mark.fresh_worker
    def test_fresh_before_it_is_called(candidate):
        started = wait_for_a_new_worker()
        assert started, "no fresh worker was started for this check before its first call"
        assert candidate.token() in started, "the check was not given the fresh worker"
        assert candidate.bump() == 1, "the fresh worker kept the earlier worker's state"
    """
)

UNUSED_REPLACEMENT = textwrap.dedent(
    """
    from replacement_helpers import SEEN, wait_for_a_new_worker


    def test_lose_the_worker(candidate):
        SEEN.add(candidate.token())
        candidate.leave()


    def test_last_without_the_candidate(candidate):
        assert wait_for_a_new_worker(), "no replacement was started after the loss"
    """
)

STOPPED_ON_PURPOSE = textwrap.dedent(
    """
    from replacement_helpers import SEEN, wait_for_a_new_worker


    def test_stop_the_worker(candidate):
        assert candidate.bump() == 1
        SEEN.add(candidate.token())
        candidate.stop()  # so that nothing of it runs while something else is measured


    def test_measure_something_else(candidate):
        # A worker started now would show its token within about a second here; none may.
        assert not wait_for_a_new_worker(within_s=10), "a worker stopped on purpose was started again"


    def test_call_it_again(candidate):
        assert candidate.bump() == 1, "the worker started for this call is not a new one"
    """
)

FUNCTIONS = (("bump", []), ("token", []), ("leave", []))


def checks(file: str, *names: str) -> list[dict[str, object]]:
    return [{"name": name, "test": f"{file}::test_{name}", "points": 1} for name in names]


def grade(challenge_factory, checks_file: str, source: str, names: tuple[str, ...], backend: str,
          submission_dir: Path, marker: str) -> GradeResult:
    solution = SOLUTION.format(marker=marker)
    challenge = challenge_factory(
        {checks_file: source, "replacement_helpers.py": HELPERS.format(marker=marker)},
        checks(checks_file, *names), functions=FUNCTIONS, reference=solution, starter=solution,
    )
    path = submission_dir / "solution.py"
    path.write_text(solution)
    return grade_submission(path, load_challenge(challenge), GradeOptions(backend=backend))


def test_a_lost_worker_and_a_fresh_one_are_started_before_the_check_that_needs_them(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    marker = f"cvgrade-replacement-{uuid.uuid4().hex[:12]}"
    result = grade(challenge_factory, "test_replaced.py", REPLACED_AFTER_A_LOSS,
                   ("lose_the_worker", "replaced_before_it_is_called", "fresh_before_it_is_called"),
                   backend, submission_dir, marker)
    outcomes = {test.name: (test.outcome, test.output) for test in result.tests}
    assert outcomes["lose_the_worker"][0] == "crashed"
    assert outcomes["replaced_before_it_is_called"] == ("ok", "")
    assert outcomes["fresh_before_it_is_called"] == ("ok", "")
    assert result.metrics["worker_starts"] == 3  # the first, the replacement, the fresh one: no spare
    assert processes_with(marker) == [], "a worker's process outlived the grading"


def test_a_replacement_that_no_check_used_is_gone_with_the_grading(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    marker = f"cvgrade-replacement-{uuid.uuid4().hex[:12]}"
    result = grade(challenge_factory, "test_unused.py", UNUSED_REPLACEMENT,
                   ("lose_the_worker", "last_without_the_candidate"), backend, submission_dir, marker)
    outcomes = {test.name: test.outcome for test in result.tests}
    assert outcomes == {"lose_the_worker": "crashed", "last_without_the_candidate": "ok"}
    assert result.metrics["worker_starts"] == 2  # the replacement was started, and never called
    assert processes_with(marker) == [], "the unused replacement outlived the grading"


def test_a_worker_a_check_stopped_on_purpose_stays_stopped_until_a_call_needs_it(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    marker = f"cvgrade-replacement-{uuid.uuid4().hex[:12]}"
    result = grade(challenge_factory, "test_stopped.py", STOPPED_ON_PURPOSE,
                   ("stop_the_worker", "measure_something_else", "call_it_again"), backend, submission_dir, marker)
    assert {test.name: test.outcome for test in result.tests} == {
        "stop_the_worker": "ok", "measure_something_else": "ok", "call_it_again": "ok"}
    assert result.metrics["worker_starts"] == 2  # the first, and the one the last check's call started
