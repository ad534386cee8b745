"""``cvgrade validate``: proof that a challenge's checks tell right from wrong.

- The hidden tests and the ``[[checks]]`` of ``challenge.toml`` match one to one:
  every test pytest collects in ``hidden/`` is a check (else it would never run,
  and a failing one would go unnoticed), and every check names a collected test.
- The reference gets full marks and passes (twice, with the same verdict).
- The public tests pass on the reference and run on the starter (a candidate's
  first ``cvgrade test``): they must never be broken or wrong.
- The starter does not pass.
- Each known-bad solution fails the checks it lists (and passes those it must
  still pass: partial credit); each known-good solution, written differently
  from the reference, passes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from grader.challenge import Challenge
from grader.grading import GradeOptions, grade_submission, run_public_checks
from grader.progress import ProgressCallback
from grader.results import GradeResult

Follow = Callable[[str], AbstractContextManager[ProgressCallback | None]]
COLLECT_TIMEOUT_S = 120


@contextlib.contextmanager
def _no_progress(label: str) -> Iterator[ProgressCallback | None]:
    yield None


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


def collected_tests(folder: Path) -> list[str]:
    """The test ids (``test_x.py::test_y``, parametrized ones with their ``[id]``) pytest collects in ``folder``.

    Run in a separate pytest process, as the judge runs them (``--import-mode=importlib``),
    so that what counts is what pytest sees, parametrization and all. Raises
    ``RuntimeError`` with pytest's output when the folder does not collect.
    """
    if not folder.is_dir():
        return []
    folder = folder.resolve()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    ini = "[pytest]\nmarkers =\n    fresh_worker: run in a newly started worker\n"
    with _temporary_ini(ini) as config:
        finished = subprocess.run(  # noqa: S603 - our interpreter, our challenge's folder
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-c", str(config), "--rootdir", str(folder),
             "-p", "no:cacheprovider", "--import-mode=importlib", str(folder)],
            capture_output=True, text=True, cwd=folder, env=env, timeout=COLLECT_TIMEOUT_S, check=False,
        )
    if finished.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError((finished.stdout + finished.stderr).strip()[-3000:])
    found = []
    for line in finished.stdout.splitlines():
        if "::" in line and not line.startswith(" "):
            path, _, name = line.strip().partition("::")
            found.append(f"{Path(path).name}::{name}")
    return found


@contextlib.contextmanager
def _temporary_ini(text: str) -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cvgrade-collect-") as folder:
        path = Path(folder) / "pytest.ini"
        path.write_text(text, encoding="utf-8")
        yield path


def check_problems_one_to_one(challenge: Challenge) -> list[str]:
    """Hidden tests without a check and checks without a test, one sentence each (empty: they match)."""
    try:
        collected = collected_tests(challenge.hidden_dir)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return [f"the hidden tests do not collect under pytest: {err}"]
    listed = {check.test: check.name for check in challenge.spec.checks}
    problems = [
        f"hidden/{test} is not listed in [[checks]] of challenge.toml: it never runs, so a failure in it "
        "would go unnoticed (add a [[checks]] entry for it, or remove it)"
        for test in collected if test not in listed
    ]
    problems += [
        f"check '{name}' names {test}, which pytest does not collect in hidden/ (a typo, or a test that is gone?)"
        for test, name in listed.items() if test not in collected
    ]
    return problems


def validate_challenge(
    challenge: Challenge,
    options: GradeOptions | None = None,
    progress: Callable[[str], None] = lambda line: None,
    follow: Follow = _no_progress,
    jobs: int = 1,
) -> ValidationReport:
    """Every proof above, in order; ``progress`` gets each line of the report, ``follow`` each grading's progress.

    ``jobs``: how many gradings run at once after the reference's first (timed checks still
    take turns: they hold the machine-wide timing lock).
    """
    report = ValidationReport(challenge.id)

    def note(line: str) -> None:
        report.lines.append(line)
        progress(line)

    def problem(line: str) -> None:
        report.problems.append(line)
        note(f"PROBLEM: {line}")

    def grade(label: str, path: Path) -> GradeResult:
        with follow(label) as callback:
            return grade_submission(path, challenge, options, progress=callback)

    mismatches = check_problems_one_to_one(challenge)
    for line in mismatches:
        problem(line)
    if not mismatches:
        note(f"hidden tests and [[checks]] match one to one ({len(challenge.spec.checks)})")

    reference = challenge.reference_dir / "solution.py"
    # The reference's first grading runs alone (it may calibrate this machine for the timed
    # checks); the other gradings run ``jobs`` at a time and are reported in this order.
    first = grade("reference (run 1)", reference)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        second = pool.submit(grade, "reference (run 2)", reference)
        public = pool.submit(_grade_public_tests, challenge, options, follow)
        starter_run = pool.submit(grade, "starter", challenge.starter_dir / "solution.py")
        bad_runs = [(entry, pool.submit(grade, entry.file, challenge.root / entry.file))
                    for entry in challenge.spec.known_bad]
        good_runs = [(good, pool.submit(grade, good.file, challenge.root / good.file))
                     for good in challenge.spec.known_good]

        verdicts = []
        for attempt, result in ((1, first), (2, second.result())):
            verdicts.append((result.status, result.passed, result.score, sorted(_failed(result))))
            note(f"reference (run {attempt}): {result.output}")
            if result.status != "graded" or not result.passed or result.score != result.max_score:
                problem(f"the reference did not get full marks on run {attempt}: {result.output}")
                _note_failures(result, note)
        if verdicts[0] != verdicts[1]:
            problem(f"grading the reference twice gave different verdicts: {verdicts[0]} vs {verdicts[1]}")

        _report_public_tests(public.result(), note, problem)

        starter = starter_run.result()
        note(f"starter: {starter.output}")
        if starter.status != "graded" or starter.passed:
            problem("the starter must be gradable and must not pass")

        for entry, run in bad_runs:
            result = run.result()
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

        for good, run in good_runs:
            result = run.result()
            note(f"{good.file}: {result.output}")
            if result.status != "graded" or not result.passed:
                problem(f"{good.file} is a sound solution and should pass, but: {result.output}")
                _note_failures(result, note)
    return report


PublicRuns = list[tuple[str, bool, GradeResult]] | None


def _grade_public_tests(challenge: Challenge, options: GradeOptions | None, follow: Follow) -> PublicRuns:
    """The public tests run on the reference and on the starter; None when the challenge has none."""
    if not any(challenge.public_dir.glob("test_*.py")):
        return None
    runs = []
    for label, path, must_pass in (("reference", challenge.reference_dir / "solution.py", True),
                                   ("starter", challenge.starter_dir / "solution.py", False)):
        with follow(f"public tests on the {label}") as callback:
            runs.append((label, must_pass, run_public_checks(path, challenge, options, progress=callback)))
    return runs


def _report_public_tests(runs: PublicRuns, note: Callable[[str], None], problem: Callable[[str], None]) -> None:
    """The public tests pass on the reference and run (gradable) on the starter."""
    if runs is None:
        note("no public tests")
        return
    for label, must_pass, result in runs:
        passed = sum(test.status == "passed" for test in result.tests)
        note(f"public tests on the {label}: {passed} of {len(result.tests)} passed")
        if result.status != "graded" or not result.tests:
            problem(f"the public tests did not run on the {label}: {result.error or 'no test reported'}")
        elif must_pass and passed != len(result.tests):
            problem(f"the public tests must pass on the reference, but {len(result.tests) - passed} failed")
            _note_failures(result, note)

