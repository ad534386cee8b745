"""Every shipped challenge tells right from wrong: `cvgrade validate` passes for it."""

from __future__ import annotations

import pytest

from grader.challenge import list_challenge_ids, load_challenge
from grader.grading import GradeOptions
from grader.validate import validate_challenge


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("challenge_id", list_challenge_ids())
def test_challenge_is_valid(challenge_id: str) -> None:
    # Two gradings at once, as `cvgrade validate --jobs 2` does: the verdicts must hold on a busy machine.
    report = validate_challenge(load_challenge(challenge_id), GradeOptions(isolation="bwrap"), jobs=2)
    assert report.ok, "\n".join(report.lines)
