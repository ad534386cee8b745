"""What a candidate may see of a result (by each check's visibility), and a result as Gradescope's
results.json and as JUnit XML. Pure functions, so the tables are the specification."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from grader.exports import gradescope_results, junit_xml
from grader.feedback import HELD_BACK_NOTE, NOT_GRADABLE, candidate_feedback
from grader.results import GradeResult
from grader.results import TestResult as CheckResult  # not a pytest class


def check(name: str, visibility: str, *, passed: bool, outcome: str = "raised", output: str = "") -> CheckResult:
    return CheckResult(
        name=name, number="1", score=2.0 if passed else 0.0, max_score=2.0, status="passed" if passed else "failed",
        output="" if passed else output or f"{name}: expected 42, got 41", visibility=visibility, gate=False,
        outcome="ok" if passed else outcome, description=f"what {name} checks", duration_s=0.5,
    )


def result(*tests: CheckResult, status: str = "graded") -> GradeResult:
    return GradeResult(
        score=None if status == "error" else sum(t.score for t in tests), max_score=2.0 * len(tests),
        passed=status == "graded", status=status,  # type: ignore[arg-type]
        error="the judge failed: Traceback ... /srv/secret/path" if status == "error" else None,
        output="summary line", failed_gates=[], tests=list(tests), metrics={"latency_ms": 3.0},
        limits={"memory_mb": 2048}, environment={"host": "grader-7"},
        challenge={"id": "iou", "version": "1.0.0"}, submission={"sha256": "ab12"},
        feedback=["cell 3: %timeit skipped", "sandbox: bubblewrap 0.8"], duration_s=12.3456,
    )


# visibility, deadline passed -> is the message shown?
VISIBILITY = [
    ("visible", False, True),
    ("visible", True, True),
    ("hidden", False, False),
    ("hidden", True, False),
    ("after_due_date", False, False),
    ("after_due_date", True, True),
    ("after_published", False, False),
    ("after_published", True, False),  # cvgrade does not publish results yet
]


@pytest.mark.parametrize(("visibility", "deadline_passed", "shown"), VISIBILITY)
def test_a_failed_checks_message_reaches_the_candidate_only_when_its_visibility_allows(
    visibility: str, deadline_passed: bool, shown: bool
) -> None:
    view = candidate_feedback(result(check("c", visibility, passed=False)),
                              deadline_passed=deadline_passed, show_scores=False)
    [seen] = view["checks"]
    assert seen["status"] == "failed"
    if shown:
        assert (seen["message"], seen["description"]) == ("c: expected 42, got 41", "what c checks")
    else:
        assert (seen["message"], seen["description"]) == ("the solution raised an exception", None)


@pytest.mark.parametrize(("outcome", "message"), [
    ("timed_out", "time limit exceeded"),
    ("out_of_memory", "memory limit exceeded"),
    ("crashed", "the solution's process crashed"),
    ("failed", "failed"),  # an assertion: what it compared stays hidden
    ("missing", "failed"),
    ("something new", "failed"),
])
def test_a_hidden_check_says_only_what_kind_of_failure_it_was(outcome: str, message: str) -> None:
    view = candidate_feedback(result(check("c", "hidden", passed=False, outcome=outcome)),
                              deadline_passed=False, show_scores=False)
    assert view["checks"][0]["message"] == message


def test_scores_the_machine_and_our_notes_stay_out_unless_allowed() -> None:
    graded = result(check("a", "visible", passed=True), check("b", "hidden", passed=False))
    hidden = candidate_feedback(graded, deadline_passed=False, show_scores=False)
    assert "score" not in hidden and "passed" not in hidden and hidden["summary"] == "1 of 2 checks passed."
    assert all("score" not in item for item in hidden["checks"])
    assert hidden["notes"] == ["cell 3: %timeit skipped"]
    assert "grader-7" not in str(hidden) and "latency_ms" not in str(hidden)
    shown = candidate_feedback(graded, deadline_passed=False, show_scores=True)
    assert (shown["score"], shown["max_score"], shown["passed"], shown["summary"]) == (2.0, 4.0, True, "summary line")
    assert [item["score"] for item in shown["checks"]] == [2.0, 0.0]


def test_a_result_that_was_not_gradable_tells_the_candidate_nothing_of_our_machine() -> None:
    view = candidate_feedback(result(check("a", "visible", passed=False), status="error"),
                              deadline_passed=True, show_scores=True)
    assert view == {"status": "error", "summary": NOT_GRADABLE, "checks": [], "notes": []}


def test_gradescope_results_use_its_field_names() -> None:
    exported = gradescope_results(result(check("a", "visible", passed=True),
                                         check("b", "after_due_date", passed=False)))
    assert (exported["score"], exported["execution_time"], exported["output"]) == (2.0, 12, "summary line")
    assert exported["tests"][1] == {"name": "b", "number": "1", "score": 0.0, "max_score": 2.0, "status": "failed",
                                    "output": "b: expected 42, got 41", "visibility": "after_due_date"}
    with pytest.raises(ValueError, match="no score"):
        gradescope_results(result(check("a", "visible", passed=False), status="error"))


def test_junit_xml_has_a_case_per_check_failures_for_the_candidates_and_errors_for_ours() -> None:
    graded = ElementTree.fromstring(junit_xml(result(
        check("a", "visible", passed=True), check("b & <c>", "hidden", passed=False, output="line one\nline two"))))
    suite = graded.find("testsuite")
    assert suite is not None and (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("iou", "2", "1")
    failure = suite.find("testcase[@name='b & <c>']/failure")
    assert failure is not None and (failure.get("message"), failure.text) == ("line one", "line one\nline two")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["score"] == "2"
    broken = ElementTree.fromstring(junit_xml(result(check("a", "visible", passed=False), status="error"))).find(
        "testsuite")
    assert broken is not None and (broken.get("failures"), broken.get("errors")) == ("0", "1")
    error = broken.find("testcase/error")
    assert error is not None and error.get("type") == "not_gradable"


def test_after_held_back_data_neither_the_view_nor_gradescope_carries_the_message() -> None:
    leaked = check("accuracy", "visible", passed=False, output="raised: HELDBACK:iVBORw0KGgo...")
    leaked = leaked.model_copy(update={"saw_held_back_data": True})
    clean = check("small_task", "visible", passed=False, output="the small task's logits have the wrong shape")
    graded = result(clean, leaked)
    view = candidate_feedback(graded, deadline_passed=True, show_scores=True)
    assert [c["message"] for c in view["checks"]] == [
        "the small task's logits have the wrong shape", "the solution raised an exception"]
    assert view["checks"][1]["description"] == "what accuracy checks"
    assert HELD_BACK_NOTE in view["notes"]
    exported = gradescope_results(graded)
    assert [t["output"] for t in exported["tests"]] == [
        "the small task's logits have the wrong shape", "the solution raised an exception: what accuracy checks"]
    assert "HELDBACK" not in str(view) + str(exported)
    assert "HELDBACK" in graded.model_dump_json()  # the hiring team's result keeps it
