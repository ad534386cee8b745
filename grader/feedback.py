"""What a candidate may see of a result, by each check's ``visibility`` (Gradescope's terms).

===================  ===========================================================
visibility           the candidate sees
===================  ===========================================================
``visible``          pass or fail, the check's message and description
``after_due_date``   as ``hidden`` until the deadline has passed, then as ``visible``
``after_published``  as ``hidden`` (cvgrade does not publish results yet)
``hidden``           pass or fail and the kind of failure (time limit, crash, ...);
                     never the message, which may echo hidden inputs or expected
                     values, nor the description
===================  ===========================================================

A check that ran after the solution had been handed held-back data (a check
marked ``held_back_data`` in ``challenge.toml``, that one or an earlier one) shows
its description and the kind of failure only, whatever its visibility: its
message could carry text the solution produced while it could see that data
(an exception, its output), and with it the data itself.

Points, the score and the verdict appear only when the team lets candidates see
scores. Metrics, limits, the machine, and why a grading was not possible never
appear: they describe the judge, not the submission. A pure function, no I/O.
"""

from __future__ import annotations

from typing import Any

from grader.results import GradeResult, TestResult
from harness.sandbox import OUTCOME_SENTENCES, Outcome

HELD_BACK_NOTE = (
    "Checks that ran once your solution had been given held-back data show the property that failed, "
    "not messages: text your solution produced could carry that data."
)
NOT_GRADABLE = (
    "Not gradable: something on our side failed while grading this submission. "
    "It does not count against your attempts; you may submit it again."
)


def candidate_feedback(result: GradeResult, *, deadline_passed: bool, show_scores: bool) -> dict[str, Any]:
    """The candidate's view of ``result``, as plain data (see the module's table)."""
    if result.status == "error":
        return {"status": "error", "summary": NOT_GRADABLE, "checks": [], "notes": []}
    checks = [_check(test, deadline_passed=deadline_passed, show_scores=show_scores) for test in result.tests]
    passed = sum(1 for test in result.tests if test.status == "passed")
    view: dict[str, Any] = {
        "status": "graded",
        "summary": result.output if show_scores else f"{passed} of {len(result.tests)} checks passed.",
        "checks": checks,
        "notes": [line for line in result.feedback if not line.startswith("sandbox:")],
    }
    if any(test.saw_held_back_data and test.status == "failed" for test in result.tests):
        view["notes"].append(HELD_BACK_NOTE)
    if show_scores:
        view.update(score=result.score, max_score=result.max_score, passed=result.passed)
    return view


def is_shown(visibility: str, *, deadline_passed: bool) -> bool:
    """Whether a check's message and description reach the candidate."""
    return visibility == "visible" or (visibility == "after_due_date" and deadline_passed)


def _check(test: TestResult, *, deadline_passed: bool, show_scores: bool) -> dict[str, Any]:
    shown = is_shown(test.visibility, deadline_passed=deadline_passed)
    message = (test.output or test.status) if shown and not test.saw_held_back_data else _kind_of_failure(test)
    check: dict[str, Any] = {
        "name": test.name,
        "status": test.status,
        "message": message,
        "description": test.description if shown else None,
    }
    if show_scores:
        check.update(score=test.score, max_score=test.max_score)
    return check


def output_for_candidate(test: TestResult) -> str:
    """What a candidate-facing export may carry as the check's output: after held-back data, the kind of failure
    and the property checked (its description), never the message."""
    if not test.saw_held_back_data:
        return test.output
    return "" if test.status == "passed" else f"{_kind_of_failure(test)}: {test.description}".rstrip(": ")


def _kind_of_failure(test: TestResult) -> str:
    if test.status == "passed":
        return "passed"
    try:
        return OUTCOME_SENTENCES.get(Outcome(test.outcome), "failed")
    except ValueError:  # "failed", "missing", "skipped": no more to say
        return "failed"
