"""Every shipped challenge tells right from wrong: `cvgrade validate` passes for it."""

from __future__ import annotations

import pytest

from grader.challenge import list_challenge_ids, load_challenge
from grader.grading import GradeOptions
from grader.validate import validate_challenge

# Not yet required to pass, and said so in issue 4's note: latency's noise gate is still being
# calibrated on our busy 2-core machines, where the reference's own speed gate can come out
# inconclusive. Its validation still runs in every CI, so the log shows how it fares.
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
