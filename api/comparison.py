"""The comparison of a challenge's candidates: one row each, ranked, with what a team decides on.

Each candidate (invitation) is represented by their **best** graded submission
(passed first, then the highest score, then the earliest), or with
``rank_by="latest"`` by their latest: a candidate who passed and then tried
something bolder that failed is not ranked on the failure. Rows carry each
check's status, the metrics under plain names (``metric_label``), the team's
current decision, the other candidates whose code theirs resembles
(``api.similarity``), and whether their timed checks ran while other gradings
shared the machine. ``comparison_csv`` writes the same table for a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.copies import similar_candidates
from api.jobs.state import JobState
from api.models import Invitation, Job, Result, Submission
from api.review import current_decisions
from api.schemas import Comparison, ComparisonRow, SimilarToPublic
from api.teams import TeamPrincipal
from grader.challenge import Challenge

RankBy = Literal["best", "latest"]
SHARED_MACHINE = "timed_alongside_other_gradings"

# Metrics the grader itself records, in words a hiring manager reads (and what they mean, for a tooltip).
_METRIC_LABELS = {
    "worker_starts": "Sandbox starts",
    SHARED_MACHINE: "Other gradings during timed checks",
    "timed_on": "Timed on",
}
_METRIC_DESCRIPTIONS = {
    "worker_starts": "How many times the candidate's sandbox was started: more than 1 means it was restarted "
                     "after a crash or a time-out.",
    SHARED_MACHINE: "How many other gradings ran on the machine while the timed checks ran (0: it was alone); "
                    "times measured beside others may be slower than the code is.",
    "timed_on": "What the timed checks ran on: cpu, or a GPU.",
}
_WORDS = {"iou": "IoU", "nms": "NMS", "gpu": "GPU", "cpu": "CPU", "ms": "(ms)", "s": "(s)", "mb": "(MB)",
          "top1": "top-1", "top5": "top-5", "bn": "batch norm", "p50": "median", "p95": "95th percentile",
          "lr": "learning rate", "ratio": "ratio", "calibration": "calibration:"}


def metric_label(name: str) -> str:
    """``box_iou_speed_ratio`` -> ``Box IoU speed ratio``; ``train_s`` -> ``Train (s)``."""
    if name in _METRIC_LABELS:
        return _METRIC_LABELS[name]
    words = [_WORDS.get(word.lower(), word) for word in re.split(r"[_.\s]+", name) if word]
    if not words:
        return name
    label = " ".join(words)
    return label[0].upper() + label[1:]


def metric_description(name: str) -> str:
    """What a metric means, where we know; else its name as recorded."""
    return _METRIC_DESCRIPTIONS.get(name, f"recorded as {name}")


def compare(session: Session, team: TeamPrincipal, challenge: Challenge, rank_by: RankBy = "best") -> Comparison:
    """Each candidate's best (or latest) graded submission to the challenge, ranked: passed, score, earliest."""
    graded: dict[int, list[Any]] = {}
    for row in session.execute(
        select(Submission.id, Submission.invitation_id, Result.passed, Result.score)
        .join(Job, Job.submission_id == Submission.id)
        .join(Result, Result.submission_id == Submission.id)
        .where(Submission.team_id == team.team_id, Submission.challenge_id == challenge.id, Job.state == JobState.DONE)
        .order_by(Submission.id)
    ):
        graded.setdefault(row.invitation_id, []).append(row)
    chosen = {invitation_id: _pick(rows, rank_by) for invitation_id, rows in graded.items()}
    ranked = sorted(chosen.values(), key=lambda row: (not row.passed, -(row.score or 0.0), row.id))
    # Only the parts of each result the table shows: its charts (hundreds of samples) are never parsed.
    bodies = {row.submission_id: row for row in session.execute(
        select(Result.submission_id, Result.max_score, Result.body["tests"].label("tests"),
               Result.body["metrics"].label("metrics"), Result.body["failed_gates"].label("failed_gates"))
        .where(Result.submission_id.in_([row.id for row in ranked])))}
    invitations = {invitation.id: invitation for invitation in session.scalars(
        select(Invitation).where(Invitation.id.in_(list(chosen))))}
    decisions = current_decisions(session, team, list(chosen))
    similar = similar_candidates(session, team, challenge.id)
    rows = []
    for rank, row in enumerate(ranked, start=1):
        body = bodies[row.id]
        invitation = invitations[row.invitation_id]
        metrics = dict(body.metrics or {})
        decision = decisions.get(invitation.id)
        rows.append(ComparisonRow(
            rank=rank, invitation_id=invitation.id, candidate=invitation.candidate, submission_id=row.id,
            latest_submission_id=graded[invitation.id][-1].id, graded_submissions=len(graded[invitation.id]),
            score=row.score, max_score=body.max_score, passed=row.passed,
            failed_gates=list(body.failed_gates or []),
            checks={test["name"]: test["status"] for test in body.tests or []},
            metrics=metrics, timed_alongside_other_gradings=_count(metrics.get(SHARED_MACHINE)),
            decision=decision.decision if decision else None,
            similar_to=similar.get(invitation.id, []),
        ))
    names = sorted({name for row in rows for name in row.metrics})
    checks = challenge.spec.checks
    return Comparison(challenge_id=challenge.id, rank_by=rank_by, checks=[check.name for check in checks],
                      timed_checks=[check.name for check in checks if check.timed],
                      metric_labels={name: metric_label(name) for name in names}, rows=rows)


def _pick(rows: list[Any], rank_by: RankBy) -> Any:
    if rank_by == "latest":
        return rows[-1]
    return min(rows, key=lambda row: (not row.passed, -(row.score or 0.0), row.id))


def _count(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int) and value > 0 else 0


# -- CSV ----------------------------------------------------------------------------------------

def comparison_csv(comparison: Comparison) -> str:
    """The comparison as CSV: one row per candidate, checks and metrics as columns. Cells that a
    spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) are quoted with a ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    metric_names = list(comparison.metric_labels)
    writer.writerow(["rank", "candidate", "invitation_id", f"{comparison.rank_by}_submission_id",
                     "graded_submissions", "score", "max_score", "passed", "failed_gates", "decision",
                     "similar_to", "timed_while_other_gradings_ran",
                     *(f"check: {name}" for name in comparison.checks),
                     *(comparison.metric_labels[name] for name in metric_names)])
    for row in comparison.rows:
        writer.writerow(_safe([
            row.rank, row.candidate, row.invitation_id, row.submission_id, row.graded_submissions,
            _number(row.score), _number(row.max_score), "yes" if row.passed else "no", "; ".join(row.failed_gates),
            row.decision or "", "; ".join(_similar_text(similar) for similar in row.similar_to),
            row.timed_alongside_other_gradings,
            *(row.checks.get(name, "") for name in comparison.checks),
            *(_cell(row.metrics.get(name)) for name in metric_names),
        ]))
    return out.getvalue()


def _similar_text(similar: SimilarToPublic) -> str:
    what = "identical" if similar.identical else f"{similar.share:.0%}"
    return f"{similar.candidate} ({what})"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _safe(cells: Iterable[object]) -> list[str]:
    return [f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text
            for text in (str(cell) for cell in cells)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
