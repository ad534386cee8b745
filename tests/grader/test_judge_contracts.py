"""The judge spec and the judge's records are versioned contracts: another version or shape is refused, clearly.

The grader and its judge are separate processes. A spec the judge cannot read stops the judge
with a message naming what is wrong; a record the grader cannot read makes the grading not
gradable (our failure, never a verdict on the candidate), with a message naming the line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.challenge import load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.judge.contracts import JUDGE_SPEC_VERSION
from grader.judge.runner import EXIT_JUDGE_FAILED

ADD = [{"name": "adds", "test": "test_add.py::test_adds", "points": 1}]


def run_judge(spec: dict[str, object], folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "judge-spec.json"
    path.write_text(json.dumps(spec))
    return subprocess.run(
        [sys.executable, "-I", "-m", "grader.judge.runner", str(path)],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )


def test_the_judge_refuses_a_spec_of_another_version_and_says_so(tmp_path: Path) -> None:
    judged = run_judge({"version": 0, "tests_dir": str(tmp_path)}, tmp_path)
    assert judged.returncode == EXIT_JUDGE_FAILED
    assert f"a judge spec of version 0, and this cvgrade reads version {JUDGE_SPEC_VERSION}" in judged.stderr
    assert "reinstall" in judged.stderr and "Traceback" not in judged.stderr


def test_the_judge_refuses_a_spec_of_its_version_with_a_field_missing(tmp_path: Path) -> None:
    judged = run_judge({"version": JUDGE_SPEC_VERSION, "tests_dir": str(tmp_path)}, tmp_path)
    assert judged.returncode == EXIT_JUDGE_FAILED
    assert "the judge cannot read its spec" in judged.stderr and "Field required" in judged.stderr
    assert "Traceback" not in judged.stderr


@pytest.mark.parametrize(("line", "problem"), [
    ({"version": 0, "kind": "check", "nodeid": "test_add.py::test_adds", "passed": True},
     "a judge record of version 0, and this cvgrade reads version 1"),
    ({"version": 1, "kind": "check", "nodeid": "test_add.py::test_adds", "passed": True, "bonus": 100},
     "check.bonus: Extra inputs are not permitted"),
    ({"version": 1, "kind": "verdict", "passed": True}, "does not match any of the expected tags"),
])
def test_a_record_the_grader_cannot_read_makes_the_grading_not_gradable(
    challenge_factory, submission_dir: Path, line: dict[str, object], problem: str
) -> None:
    # A hidden check (ours) writes a foreign line into the judge's records file: the judge's cwd.
    checks = textwrap.dedent(f"""
        import json

        def test_adds(candidate):
            with open("records.jsonl", "a") as records:
                records.write(json.dumps({line!r}) + "\\n")
            assert candidate.add(1, 2) == 3
    """)
    challenge = challenge_factory({"test_add.py": checks}, ADD)
    solution = submission_dir / "solution.py"
    solution.write_text("def add(a, b):\n    return a + b\n")
    result = grade_submission(solution, load_challenge(challenge), GradeOptions(backend="local"))
    assert (result.status, result.score, result.passed, result.exit_code) == ("error", None, False, 3)
    assert result.error is not None and "the judge wrote a record this grader cannot read" in result.error
    assert problem in result.error
