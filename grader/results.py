"""The result of grading one submission, as a person and a machine read it.

Field names follow Gradescope's ``results.json`` (``score``, ``max_score``,
``tests`` with ``name``, ``score``, ``max_score``, ``status``, ``output``,
``visibility``) so that platform can consume it; the rest is ours.

A result is stored per submission and rendered by the dashboard, so the text in
it that the solution produced (the checks' outputs, the feedback's notes, which
quote the submission) is capped in all: ``MAX_CANDIDATE_TEXT_BYTES``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from grader.errors import ExitCode
from grader.scoring import Verdict

SCHEMA_VERSION = 1
MAX_CANDIDATE_TEXT_BYTES = 256 * 1024  # the checks' outputs and the feedback, in all (UTF-8)
MAX_FEEDBACK_LINES = 100
MAX_FEEDBACK_CHARS = 500
CUT_NOTE = "\n[cut: a result keeps at most 256 KB of text from the solution]"


class TestResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    number: str
    score: float
    max_score: float
    status: Literal["passed", "failed"]
    output: str
    visibility: str
    gate: bool
    outcome: str
    description: str
    duration_s: float
    # The solution had been handed held-back data when this check ran (this check or an earlier
    # one): the candidate's view shows the property that failed, never this check's output.
    saw_held_back_data: bool = False


class GradeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    score: float | None
    max_score: float
    passed: bool
    status: Literal["graded", "error"]
    error: str | None = None
    output: str
    failed_gates: list[str]
    tests: list[TestResult]
    metrics: dict[str, Any]
    limits: dict[str, Any]
    environment: dict[str, Any]
    challenge: dict[str, str]
    submission: dict[str, Any]
    feedback: list[str]
    duration_s: float
    charts: list[dict[str, Any]] = []  # what the HTML report draws; each names its check
    # Not gradable only because a timed check found the machine too busy to decide, after its
    # own retries: grading again later (a quieter machine) may well succeed.
    inconclusive: bool = False

    @property
    def exit_code(self) -> ExitCode:
        """0 passed, 1 graded but not passed, 3 not gradable (our failure)."""
        if self.status == "error":
            return ExitCode.OUR_FAILURE
        return ExitCode.PASSED if self.passed else ExitCode.NOT_PASSED


class Refusal(BaseModel):
    """What ``--json`` prints for a submission that got no grading at all.

    ``status`` is ``refused`` when the input is at fault (a hostile zip, a broken
    notebook, an unknown challenge: exit code 2) and ``error`` when our side failed
    before the judge could run (no sandbox: exit code 3). There is no score.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    status: Literal["refused", "error"]
    score: None = None
    passed: bool = False
    error: str
    output: str
    challenge: dict[str, str]
    submission: dict[str, Any]


def refusal(submission: str, challenge: dict[str, str], message: str, *, refused: bool) -> Refusal:
    """The JSON object of a submission that was not graded; ``refused``: the input was at fault."""
    output = (f"Refused: {message}" if refused
              else f"Not gradable: {message}. This is our failure, not the submission's.")
    return Refusal(status="refused" if refused else "error", error=message, output=output,
                   challenge=challenge, submission={"name": submission})


def build_result(
    verdict: Verdict,
    *,
    metrics: dict[str, Any],
    limits: dict[str, Any],
    environment: dict[str, Any],
    challenge: dict[str, str],
    submission: dict[str, Any],
    feedback: list[str],
    duration_s: float,
    charts: list[dict[str, Any]] | None = None,
) -> GradeResult:
    """The result of a verdict; ``inconclusive`` when the only failures of ours were undecided timings."""
    tests = []
    budget = [MAX_CANDIDATE_TEXT_BYTES]
    feedback = _capped_feedback(feedback, budget)
    for number, item in enumerate(verdict.checks, start=1):
        output = item.message if not item.detail else f"{item.message}\n{item.detail}"
        tests.append(TestResult(
            name=item.check.name,
            number=str(number),
            score=item.score,
            max_score=item.check.points,
            status="passed" if item.passed else "failed",
            output="" if item.passed else _within(output, budget),
            visibility=item.check.visibility,
            gate=item.check.gate,
            outcome=item.outcome,
            description=item.check.description,
            duration_s=item.duration_s,
            saw_held_back_data=item.saw_held_back_data,
        ))
    return GradeResult(
        score=verdict.score,
        max_score=verdict.max_score,
        passed=verdict.passed,
        status="graded" if verdict.status == "graded" else "error",
        error=verdict.error,
        output=_summary(verdict),
        failed_gates=verdict.failed_gates,
        tests=tests,
        metrics=metrics,
        limits=limits,
        environment=environment,
        challenge=challenge,
        submission=submission,
        feedback=feedback,
        duration_s=round(duration_s, 3),
        charts=charts or [],
        inconclusive=verdict.status == "error" and verdict.inconclusive,
    )


def _within(text: str, budget: list[int]) -> str:
    """``text``, cut to what is left of ``budget`` (UTF-8 bytes, shared by a result's texts, updated)."""
    data = text.encode("utf-8")
    if len(data) <= budget[0]:
        budget[0] -= len(data)
        return text
    kept = data[:max(budget[0], 0)].decode("utf-8", errors="ignore")
    budget[0] = 0
    return kept + CUT_NOTE


def _capped_feedback(lines: list[str], budget: list[int]) -> list[str]:
    """At most MAX_FEEDBACK_LINES notes of at most MAX_FEEDBACK_CHARS characters (they quote the submission)."""
    kept = [_within(line if len(line) <= MAX_FEEDBACK_CHARS else line[:MAX_FEEDBACK_CHARS - 3] + "...", budget)
            for line in lines[:MAX_FEEDBACK_LINES]]
    if len(lines) > MAX_FEEDBACK_LINES:
        kept.append(f"... and {len(lines) - MAX_FEEDBACK_LINES} more notes like these")
    return kept


def _summary(verdict: Verdict) -> str:
    if verdict.status == "error":
        return f"Not gradable: {verdict.error}. This is our failure, not the submission's."
    passed = sum(1 for item in verdict.checks if item.passed)
    line = f"{passed} of {len(verdict.checks)} checks passed, score {verdict.score:g} / {verdict.max_score:g}."
    if verdict.failed_gates:
        line += f" Failed gate(s): {', '.join(verdict.failed_gates)}."
    return line + (" PASSED" if verdict.passed else " NOT PASSED")
