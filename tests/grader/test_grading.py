"""Grading end to end: real judge process, real sandboxed worker, real pytest."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult

ADD_CHECKS = textwrap.dedent(
    """
    EXPECTED_SUM_SECRET = 3

    def test_adds(candidate):
        assert candidate.add(1, 2) == EXPECTED_SUM_SECRET, "add(1, 2) gives the wrong sum"

    def test_adds_negatives(candidate):
        assert candidate.add(-1, -2) == -3, "add is wrong for negative numbers"
    """
)
ADD = [
    {"name": "adds", "test": "test_add.py::test_adds", "points": 5, "gate": True},
    {"name": "adds_negatives", "test": "test_add.py::test_adds_negatives", "points": 5},
]


def options(backend: str, isolation: str = "auto") -> GradeOptions:
    return GradeOptions(backend=backend, isolation=isolation)  # type: ignore[arg-type]


def grade(
    challenge_dir: Path, source: str, folder: Path, backend: str, isolation: str = "auto", name: str = "solution.py"
) -> GradeResult:
    path = folder / name
    path.write_text(source)
    return grade_submission(path, load_challenge(challenge_dir), options(backend, isolation))


def by_name(result: GradeResult) -> dict[str, object]:
    return {test.name: test for test in result.tests}


@pytest.mark.parametrize("sandbox", ["docker", "local:bwrap", "local:process"])
def test_reference_gets_full_marks_and_a_wrong_solution_none(
    challenge_factory, submission_dir: Path, sandbox: str, request: pytest.FixtureRequest
) -> None:
    backend, _, isolation = sandbox.partition(":")
    if backend == "docker":
        request.getfixturevalue("docker")
    elif isolation == "bwrap":
        request.getfixturevalue("bwrap")
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    right = grade(challenge, "def add(a, b):\n    return a + b\n", submission_dir, backend, isolation or "auto")
    assert (right.status, right.score, right.max_score, right.passed) == ("graded", 10, 10, True)
    assert right.exit_code == 0
    wrong = grade(challenge, "def add(a, b):\n    return a - b\n", submission_dir, backend, isolation or "auto")
    assert (wrong.status, wrong.score, wrong.passed) == ("graded", 0, False)
    assert wrong.failed_gates == ["adds"] and wrong.exit_code == 1


def test_hidden_failures_show_the_message_but_not_the_expression(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    result = grade(challenge, "def add(a, b):\n    return 0\n", submission_dir, backend)
    output = by_name(result)["adds"].output  # type: ignore[attr-defined]
    assert output == "add(1, 2) gives the wrong sum"
    assert "EXPECTED_SUM_SECRET" not in result.model_dump_json()


def test_a_check_that_times_out_fails_alone_and_the_rest_still_report(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    checks = textwrap.dedent(
        """
        def test_slow(candidate):
            candidate.slow()

        def test_adds(candidate):
            assert candidate.add(1, 2) == 3, "wrong sum"
        """
    )
    challenge = challenge_factory(
        {"test_mix.py": checks},
        [
            {"name": "slow", "test": "test_mix.py::test_slow", "points": 1, "timeout_s": 2},
            {"name": "adds", "test": "test_mix.py::test_adds", "points": 1},
        ],
        functions=(("add", ["a", "b"]), ("slow", [])),
    )
    source = "import time\ndef add(a, b):\n    return a + b\ndef slow():\n    while True: pass\n"
    result = grade(challenge, source, submission_dir, backend)
    tests = by_name(result)
    assert tests["slow"].outcome == "timed_out"  # type: ignore[attr-defined]
    assert "slow() did not return within the check's time limit of 2 s in check slow" in tests["slow"].output  # type: ignore[attr-defined]
    assert tests["adds"].status == "passed"  # type: ignore[attr-defined]
    assert result.metrics["worker_starts"] == 2  # restarted after the timeout
    assert result.status == "graded"


def test_a_crash_fails_its_check_and_the_worker_is_restarted(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    checks = textwrap.dedent(
        """
        def test_crash(candidate):
            candidate.crash()

        def test_adds(candidate):
            assert candidate.add(1, 2) == 3
        """
    )
    challenge = challenge_factory(
        {"test_mix.py": checks},
        [
            {"name": "crash", "test": "test_mix.py::test_crash", "points": 1},
            {"name": "adds", "test": "test_mix.py::test_adds", "points": 1},
        ],
        functions=(("add", ["a", "b"]), ("crash", [])),
    )
    source = "import os\ndef add(a, b):\n    return a + b\ndef crash():\n    print('all good!'); os._exit(0)\n"
    tests = by_name(grade(challenge, source, submission_dir, backend))
    assert tests["crash"].outcome == "crashed" and "exited with code 0" in tests["crash"].output  # type: ignore[attr-defined]
    assert tests["adds"].status == "passed"  # type: ignore[attr-defined]


def test_a_check_can_stop_the_candidates_worker_once_it_has_what_it_needs(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    checks = textwrap.dedent(
        """
        def test_stop(candidate):
            assert candidate.count() == 1 and candidate.count() == 2, "the worker keeps its state between calls"
            candidate.stop()
            assert candidate.count() == 1, "after stop(), a call meets a fresh worker"
        """
    )
    challenge = challenge_factory(
        {"test_stop.py": checks}, [{"name": "stop", "test": "test_stop.py::test_stop", "points": 1}],
        functions=(("count", []),),
    )
    source = "calls = []\ndef count():\n    calls.append(1)\n    return len(calls)\n"
    result = grade(challenge, source, submission_dir, backend)
    assert by_name(result)["stop"].status == "passed", by_name(result)["stop"].output  # type: ignore[attr-defined]
    assert result.metrics["worker_starts"] == 2


def test_an_import_error_fails_every_check_with_its_line(challenge_factory, submission_dir: Path, backend: str) -> None:
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    result = grade(challenge, "x = 1\ny = 1 / 0\ndef add(a, b):\n    return a + b\n", submission_dir, backend)
    assert result.status == "graded" and result.score == 0
    for test in result.tests:
        assert test.outcome == "import_failed"
        assert "could not be imported: ZeroDivisionError: division by zero" in test.output
        assert "line 2" in test.output
    assert result.metrics["worker_starts"] == 1  # an import failure is not retried per check


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def plus(a, b):\n    return a + b\n", "your solution does not define add(a, b)"),
        ("def add(a):\n    return a\n", "add(a) cannot be called as add(a, b)"),
        ("add = 3\n", "add in your solution is a int, not a function"),
    ],
)
def test_a_wrong_interface_is_named_in_the_feedback(
    challenge_factory, submission_dir: Path, backend: str, source: str, message: str
) -> None:
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    result = grade(challenge, source, submission_dir, backend)
    assert result.status == "graded"
    assert all(message in test.output for test in result.tests)


def test_skipped_and_xfailed_checks_count_as_failed(challenge_factory, submission_dir: Path, backend: str) -> None:
    checks = textwrap.dedent(
        """
        import pytest

        def test_skips(candidate):
            pytest.skip("no")

        @pytest.mark.xfail(reason="no")
        def test_xfails(candidate):
            assert False
        """
    )
    challenge = challenge_factory(
        {"test_odd.py": checks},
        [
            {"name": "skips", "test": "test_odd.py::test_skips", "points": 1},
            {"name": "xfails", "test": "test_odd.py::test_xfails", "points": 1},
        ],
    )
    result = grade(challenge, "def add(a, b):\n    return a + b\n", submission_dir, backend)
    assert [t.status for t in result.tests] == ["failed", "failed"]
    assert "skipped checks count as failed" in result.tests[0].output


def test_a_broken_hidden_check_is_our_failure_not_the_candidates(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    challenge = challenge_factory({"test_add.py": "def test_adds(candidate:\n"}, ADD[:1])
    result = grade(challenge, "def add(a, b):\n    return a + b\n", submission_dir, backend)
    assert result.status == "error" and result.score is None and result.passed is False
    assert result.exit_code == 3
    assert result.error is not None and "judge failed" in result.error


def test_the_run_time_limit_stops_the_remaining_checks(challenge_factory, submission_dir: Path, backend: str) -> None:
    checks = "".join(f"def test_{i}(candidate):\n    candidate.call('wait', 3)\n\n" for i in range(4))
    challenge = challenge_factory(
        {"test_slow.py": checks},
        [{"name": f"c{i}", "test": f"test_slow.py::test_{i}", "points": 1} for i in range(4)],
        functions=(("wait", ["seconds"]),),
        limits="run_timeout_s = 8",
    )
    source = "import time\ndef wait(seconds):\n    time.sleep(seconds)\n    return 1\n"
    result = grade(challenge, source, submission_dir, backend)
    statuses = [t.status for t in result.tests]
    assert statuses[0] == "passed" and statuses[-1] == "failed"
    assert "whole run's time limit" in result.tests[-1].output
    assert result.status == "graded"


def test_a_notebook_runs_cell_by_cell_with_magics_skipped(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# My solution"),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport math"),
        nbformat.v4.new_code_cell("!pip install something"),
        nbformat.v4.new_code_cell("def add(a, b):\n    return a + b"),
    ]
    path = submission_dir / "solution.ipynb"
    nbformat.write(notebook, path)
    result = grade_submission(path, load_challenge(challenge), options(backend))
    assert result.passed and result.submission["kind"] == "ipynb"
    assert any("cell 2" in line and "%matplotlib" in line for line in result.feedback)


def test_a_notebook_error_names_the_cell_and_line(challenge_factory, submission_dir: Path, backend: str) -> None:
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("def add(a, b):\n    return a + b\n\nundefined_name"),
    ]
    path = submission_dir / "solution.ipynb"
    nbformat.write(notebook, path)
    result = grade_submission(path, load_challenge(challenge), options(backend))
    output = result.tests[0].output
    assert "NameError" in output and "<cell 2>" in output and "line 4" in output


def test_the_result_carries_gradescope_fields_and_our_own(
    challenge_factory, submission_dir: Path, backend: str
) -> None:
    challenge = challenge_factory({"test_add.py": ADD_CHECKS}, ADD)
    result = json.loads(
        grade(challenge, "def add(a, b):\n    return a + b\n", submission_dir, backend).model_dump_json()
    )
    for field in (
        "score",
        "max_score",
        "passed",
        "status",
        "tests",
        "metrics",
        "limits",
        "environment",
        "duration_s",
        "output",
    ):
        assert field in result
    for field in ("name", "score", "max_score", "status", "output", "visibility"):
        assert field in result["tests"][0]
    assert result["environment"]["sandbox"]["backend"] == backend
    assert result["environment"]["runtime"]["torch"].startswith("2.14.1")
    assert result["limits"]["memory_mb"] == 2048


def test_a_reference_first_called_after_its_setup_limit_has_passed_still_answers(
    challenge_factory, submission_dir: Path
) -> None:
    # The reference's worker starts with the candidate's; iou first calls it in its speed check,
    # which on a busy machine comes after the setup limit has passed since the start. Its greeting
    # came in time, and the judge takes it at once, as it takes the candidate's.
    checks = textwrap.dedent(
        """
        import time

        def test_first(candidate):
            time.sleep(25)
            assert candidate.add(1, 2) == 3

        def test_against_the_reference(candidate, reference):
            assert candidate.add(2, 2) == reference.add(2, 2)
        """
    )
    challenge = challenge_factory({"test_late.py": checks}, [
        {"name": "first", "test": "test_late.py::test_first", "points": 1},
        {"name": "against_the_reference", "test": "test_late.py::test_against_the_reference", "points": 1},
    ], limits="setup_timeout_s = 20")
    result = grade(challenge, "def add(a, b):\n    return a + b\n", submission_dir, "local", "process")
    assert {test.name: test.output for test in result.tests} == {"first": "", "against_the_reference": ""}
    assert result.score == 2


def test_a_check_imports_its_helpers_from_its_own_folder_by_name(challenge_factory, submission_dir: Path) -> None:
    # hidden/ holds the checks' own modules (an oracle, cases); the judge puts that folder on the
    # path, so a check needs no sys.path line of its own.
    oracle = "def expected_sum(a, b):\n    return a + b\n"
    checks = "from add_oracle import expected_sum\n\n" + ADD_CHECKS.replace("== -3", "== expected_sum(-1, -2)")
    challenge = challenge_factory({"test_add.py": checks, "add_oracle.py": oracle}, ADD)
    right = grade(challenge, "def add(a, b):\n    return a + b\n", submission_dir, "local")
    assert (right.status, right.score, right.passed) == ("graded", 10, True), right.error
