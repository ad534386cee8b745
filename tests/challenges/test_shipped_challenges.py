"""Every shipped challenge tells right from wrong: `cvgrade validate` passes for it."""

from __future__ import annotations

import pytest

from grader.challenge import list_challenge_ids, load_challenge
from grader.grading import GradeOptions
from grader.validate import validate_challenge

# Not yet required to pass (issue 4 stays open): latency's verdicts hold on this 2-core VM, but its
# validation failed in both full CI runs of 2026-11-21 for timing noise (first calibration found no
# quiet runs; then "inference mode only" came out inconclusive instead of failing), each cause fixed
# since and seen green only in a lone run. It still runs in every CI; remove once CI shows it green.
STILL_CALIBRATING = {"latency"}


def _marked(challenge_id: str) -> object:
    if challenge_id in STILL_CALIBRATING:
        return pytest.param(challenge_id, marks=pytest.mark.xfail(
            strict=False, reason=f"{challenge_id}: speed gate still being calibrated (issue 4)"))
    return challenge_id


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("challenge_id", [_marked(c) for c in list_challenge_ids()])
def test_challenge_is_valid(challenge_id: str) -> None:
    report = validate_challenge(load_challenge(challenge_id), GradeOptions(isolation="bwrap"))
    assert report.ok, "\n".join(report.lines)
