"""Scores and verdicts from the judge's check records (``CheckRecord``). A pure function, no I/O.

Rules:
- A check earns its points only when the judge recorded it as passed. A check
  with no record (the judge stopped, the check was never collected) failed.
- ``passed`` needs every gate to pass and the score to reach the pass mark.
- A record flagged as an infrastructure failure makes the whole grading
  ``error`` (not gradable): no score is charged to the candidate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.challenge import CheckSpec
from grader.judge.contracts import CheckRecord

NOT_REPORTED = "the judge did not report this check"


@dataclass(frozen=True)
class CheckScore:
    check: CheckSpec
    passed: bool
    score: float
    outcome: str
    message: str
    detail: str
    duration_s: float
    metrics: Mapping[str, Any] = field(default_factory=dict)
    saw_held_back_data: bool = False  # the solution had been handed held-back data when this check ran


@dataclass(frozen=True)
class Verdict:
    checks: list[CheckScore]
    score: float | None  # None when not gradable
    max_score: float
    passed: bool
    status: str  # "graded" | "error"
    failed_gates: list[str]
    error: str | None
    inconclusive: bool = False  # every failure of ours was a timed check the machine was too busy to decide


def score_checks(
    checks: Sequence[CheckSpec],
    records: Mapping[str, CheckRecord],
    pass_mark: float,
    *,
    judge_error: str | None = None,
) -> Verdict:
    """Turn per-check records (keyed by the check's pytest node) into a verdict."""
    scored: list[CheckScore] = []
    infrastructure: list[str] = [judge_error] if judge_error else []
    undecided = 0
    for check in checks:
        record = records.get(check.test)
        if record is None:
            scored.append(CheckScore(check, False, 0.0, "missing", NOT_REPORTED, "", 0.0))
            continue
        passed = record.passed
        if record.infrastructure:
            infrastructure.append(f"{check.name}: {record.message}")
            undecided += record.outcome == "inconclusive"
        scored.append(CheckScore(
            check=check,
            passed=passed,
            score=check.points if passed else 0.0,
            outcome=record.outcome,
            message=record.message,
            detail=record.detail,
            duration_s=record.duration_s,
            metrics=dict(record.metrics),
            saw_held_back_data=record.saw_held_back_data,
        ))
    max_score = float(sum(check.points for check in checks))
    total = float(sum(item.score for item in scored))
    failed_gates = [item.check.name for item in scored if item.check.gate and not item.passed]
    if infrastructure:
        return Verdict(scored, None, max_score, False, "error", failed_gates, "; ".join(infrastructure),
                       inconclusive=undecided == len(infrastructure))
    reaches_mark = max_score > 0 and _at_least(total / max_score, pass_mark)
    return Verdict(scored, total, max_score, reaches_mark and not failed_gates, "graded", failed_gates, None)


def _at_least(fraction: float, mark: float) -> bool:
    """fraction >= mark, tolerant to float rounding (70 of 100 meets 0.7)."""
    return fraction >= mark or math.isclose(fraction, mark, rel_tol=1e-9, abs_tol=1e-12)
