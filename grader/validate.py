"""``cvgrade validate``: proof that a challenge's checks tell right from wrong.

The reference gets full marks and passes (twice, with the same verdict), the
starter does not pass, each known-bad solution fails the checks it lists (and
passes those it must still pass: partial credit), and each known-good solution,
written differently from the reference, passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from grader.challenge import Challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult


@dataclass
class ValidationReport:
    challenge: str
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _failed(result: GradeResult) -> set[str]:
    return {test.name for test in result.tests if test.status == "failed"}


def _note_failures(result: GradeResult, note: Callable[[str], None]) -> None:
    """One line per failed check: its name and the first line of what it said."""
    for test in result.tests:
        if test.status == "failed":
            note(f"  {test.name}: {test.output.splitlines()[0] if test.output else ''}")


def validate_challenge(
    challenge: Challenge,
    options: GradeOptions | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> ValidationReport:
    report = ValidationReport(challenge.id)

    def note(line: str) -> None:
        report.lines.append(line)
        progress(line)

    def problem(line: str) -> None:
        report.problems.append(line)
        note(f"PROBLEM: {line}")

    reference = challenge.reference_dir / "solution.py"
    verdicts = []
    for attempt in (1, 2):
        result = grade_submission(reference, challenge, options)
        verdicts.append((result.status, result.passed, result.score, sorted(_failed(result))))
        note(f"reference (run {attempt}): {result.output}")
        if result.status != "graded" or not result.passed or result.score != result.max_score:
            problem(f"the reference did not get full marks on run {attempt}: {result.output}")
            _note_failures(result, note)
    if verdicts[0] != verdicts[1]:
        problem(f"grading the reference twice gave different verdicts: {verdicts[0]} vs {verdicts[1]}")

    starter = grade_submission(challenge.starter_dir / "solution.py", challenge, options)
    note(f"starter: {starter.output}")
    if starter.status != "graded" or starter.passed:
        problem("the starter must be gradable and must not pass")

    for entry in challenge.spec.known_bad:
        result = grade_submission(challenge.root / entry.file, challenge, options)
        failed = _failed(result)
        missing = sorted(set(entry.must_fail) - failed)
        lost = sorted(set(entry.must_pass) & failed)
        note(f"{entry.file}: failed {sorted(failed)}")
        if result.status != "graded":
            problem(f"{entry.file} was not gradable: {result.error}")
            continue
        if missing:
            problem(f"{entry.file} should fail {missing} but passed them")
        if lost:
            problem(f"{entry.file} should still pass {lost} (partial credit) but failed them")

    for good in challenge.spec.known_good:
        result = grade_submission(challenge.root / good.file, challenge, options)
        note(f"{good.file}: {result.output}")
        if result.status != "graded" or not result.passed:
            problem(f"{good.file} is a sound solution and should pass, but: {result.output}")
            _note_failures(result, note)
    return report
