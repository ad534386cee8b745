"""Scoring is a pure function: the table below is its specification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.challenge import CheckSpec
from grader.judge.contracts import RECORDS_VERSION, CheckRecord
from grader.judge.records import read_records
from grader.scoring import NOT_REPORTED, score_checks

CHECKS = [
    CheckSpec(name="accuracy", test="test_a.py::test_accuracy", points=60),
    CheckSpec(name="edge_cases", test="test_a.py::test_edges", points=30, gate=True),
    CheckSpec(name="speed", test="test_a.py::test_speed", points=10, gate=True),
]


def records(*passed: str, **extra: dict[str, object]) -> dict[str, CheckRecord]:
    result: dict[str, dict[str, object]] = {}
    for check in CHECKS:
        result[check.test] = {"passed": check.name in passed, "outcome": "ok" if check.name in passed else "failed",
                              "message": "" if check.name in passed else "wrong", "duration_s": 0.1}
    for name, fields in extra.items():
        result[next(c.test for c in CHECKS if c.name == name)].update(fields)
    return typed(result)


def typed(records: dict[str, dict[str, object]]) -> dict[str, CheckRecord]:
    """The judge's check records with these fields, as the grader reads them."""
    return {node: CheckRecord.model_validate({"nodeid": node, **fields}) for node, fields in records.items()}


@pytest.mark.parametrize(
    ("passed_checks", "pass_mark", "score", "passed", "failed_gates"),
    [
        (("accuracy", "edge_cases", "speed"), 0.7, 100, True, []),
        (("edge_cases", "speed"), 0.4, 40, True, []),            # exactly at the mark
        (("edge_cases", "speed"), 0.41, 40, False, []),          # just under the mark
        (("accuracy", "speed"), 0.5, 70, False, ["edge_cases"]),  # a failed gate fails whatever the score
        (("accuracy", "edge_cases"), 0.5, 90, False, ["speed"]),
        ((), 0.0, 0, False, ["edge_cases", "speed"]),
    ],
)
def test_score_and_verdict(passed_checks: tuple[str, ...], pass_mark: float, score: float,
                           passed: bool, failed_gates: list[str]) -> None:
    verdict = score_checks(CHECKS, records(*passed_checks), pass_mark)
    assert verdict.status == "graded"
    assert verdict.score == score and verdict.max_score == 100
    assert verdict.passed is passed
    assert verdict.failed_gates == failed_gates


def test_70_of_100_meets_a_pass_mark_of_0_7_despite_float_rounding() -> None:
    checks = [CheckSpec(name=f"c{i}", test=f"test_a.py::test_{i}", points=10) for i in range(10)]
    recs = typed({c.test: {"passed": i < 7} for i, c in enumerate(checks)})
    assert score_checks(checks, recs, 0.7).passed is True


def test_a_check_without_a_record_fails() -> None:
    recs = records("accuracy", "edge_cases", "speed")
    del recs["test_a.py::test_speed"]
    verdict = score_checks(CHECKS, recs, 0.5)
    speed = verdict.checks[2]
    assert not speed.passed and speed.message == NOT_REPORTED and speed.outcome == "missing"
    assert verdict.passed is False


@pytest.mark.parametrize("claimed", [1, "true", "passed", None])
def test_only_a_literal_true_counts_as_passed(claimed: object, tmp_path: Path) -> None:
    # A record claiming anything but ``true`` is not one the grader reads: the grading is ours to redo.
    lines = [{"version": RECORDS_VERSION, "kind": "check", "nodeid": check.test,
              "passed": claimed if check.name == "accuracy" else True} for check in CHECKS]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = read_records(tmp_path / "records.jsonl")
    verdict = score_checks(CHECKS, read.checks(), 0.0, judge_error=read.problem)
    assert verdict.checks[0].passed is False
    assert verdict.status == "error" and "line 1 of records.jsonl" in str(verdict.error)
    assert "check.passed: Input should be a valid boolean" in str(verdict.error)


def test_infrastructure_failure_makes_the_grading_not_gradable() -> None:
    verdict = score_checks(CHECKS, records("accuracy", speed={"infrastructure": True, "message": "no sandbox"}), 0.5)
    assert verdict.status == "error"
    assert verdict.score is None and verdict.passed is False
    assert verdict.error is not None and "no sandbox" in verdict.error


def test_a_judge_failure_makes_the_grading_not_gradable() -> None:
    verdict = score_checks(CHECKS, records("accuracy", "edge_cases", "speed"), 0.5, judge_error="judge died")
    assert verdict.status == "error" and verdict.score is None and verdict.error == "judge died"


def test_metrics_and_durations_are_kept() -> None:
    verdict = score_checks(CHECKS, records("speed", speed={"metrics": {"speed_ratio": 1.5}}), 0.5)
    assert verdict.checks[2].metrics == {"speed_ratio": 1.5}
    assert verdict.checks[2].duration_s == 0.1
