"""A result in other graders' formats: Gradescope's ``results.json`` and JUnit XML. Pure functions."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET  # writing only; untrusted XML is never parsed here

from grader.feedback import output_for_candidate
from grader.results import GradeResult


def gradescope_results(result: GradeResult) -> dict[str, Any]:
    """Gradescope's ``results.json`` for a graded result.

    Gradescope shows a test's ``output`` to the student: a check that ran after the solution
    had held-back data carries the property it checks, never its message (``grader.feedback``).
    Raises ``ValueError`` for a result that was not gradable: it has no score,
    and a 0 imported into Gradescope would read as the candidate's.
    """
    if result.status != "graded" or result.score is None:
        raise ValueError("a result that was not gradable has no score to export")
    return {
        "score": result.score,
        "execution_time": round(result.duration_s),
        "output": result.output,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": test.name,
                "number": test.number,
                "score": test.score,
                "max_score": test.max_score,
                "status": test.status,
                "output": output_for_candidate(test),
                "visibility": test.visibility,
            }
            for test in result.tests
        ],
        "extra_data": {
            "passed": result.passed,
            "failed_gates": result.failed_gates,
            "challenge": result.challenge,
            "metrics": result.metrics,
        },
    }


def junit_xml(result: GradeResult) -> str:
    """JUnit XML: one test case per check. A failed check is a ``failure``; when the grading
    was not possible (our failure) every check that did not pass is an ``error`` instead."""
    suite_name = result.challenge.get("id", "challenge")
    failed = [test for test in result.tests if test.status != "passed"]
    is_error = result.status == "error"
    attributes = {
        "name": suite_name,
        "tests": str(len(result.tests)),
        "failures": "0" if is_error else str(len(failed)),
        "errors": str(len(failed)) if is_error else "0",
        "skipped": "0",
        "time": f"{result.duration_s:.3f}",
    }
    suites = ET.Element("testsuites", {key: attributes[key] for key in ("tests", "failures", "errors", "time")})
    suite = ET.SubElement(suites, "testsuite", attributes)
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("challenge_version", result.challenge.get("version", "")),
        ("status", result.status),
        ("score", "" if result.score is None else f"{result.score:g}"),
        ("max_score", f"{result.max_score:g}"),
        ("passed", str(result.passed).lower()),
        ("submission_sha256", str(result.submission.get("sha256", ""))),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for test in result.tests:
        case = ET.SubElement(suite, "testcase", {
            "classname": suite_name, "name": test.name, "time": f"{test.duration_s:.3f}",
        })
        if test.status == "passed":
            continue
        text = test.output or test.outcome
        if is_error:
            detail = ET.SubElement(case, "error", {"message": result.error or "not gradable", "type": "not_gradable"})
        else:
            first_line = text.splitlines()[0] if text else "failed"
            detail = ET.SubElement(case, "failure", {"message": first_line, "type": test.outcome})
        detail.text = text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
