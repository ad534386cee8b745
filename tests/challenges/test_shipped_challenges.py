"""Every shipped challenge tells right from wrong: `cvgrade validate` passes for it."""

from __future__ import annotations

import pytest

from grader.challenge import list_challenge_ids, load_challenge
from grader.grading import GradeOptions
from grader.validate import validate_challenge


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("challenge_id", list_challenge_ids())
def test_challenge_is_valid(challenge_id: str) -> None:
    report = validate_challenge(load_challenge(challenge_id), GradeOptions(isolation="bwrap"))
    assert report.ok, "\n".join(report.lines)
