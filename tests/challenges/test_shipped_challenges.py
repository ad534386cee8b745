"""Every shipped challenge tells right from wrong: `cvgrade validate` passes for it.

Under ``./scripts/test`` (and so in CI) ``CVGRADE_REUSE_PASSED_VALIDATIONS=1``: a challenge whose
files, grader and harness sources, packages, sandbox and calibration are exactly those of an
earlier passing validation on this machine reuses that validation's report
(``grader.validation_cache``); anything changed validates for real. Plain pytest validates for real.
"""

from __future__ import annotations

import os

import pytest

from grader.challenge import list_challenge_ids, load_challenge
from grader.grading import GradeOptions
from grader.validate import validate_challenge
from grader.validation_cache import validate_reusing_passed

pytestmark = pytest.mark.validation


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("challenge_id", list_challenge_ids())
def test_challenge_is_valid(challenge_id: str) -> None:
    # Two gradings at once, as `cvgrade validate --jobs 2` does: the verdicts must hold on a busy machine.
    challenge, options = load_challenge(challenge_id), GradeOptions(isolation="bwrap")
    if os.environ.get("CVGRADE_REUSE_PASSED_VALIDATIONS") == "1":
        validation = validate_reusing_passed(challenge, options, progress=print, jobs=2)
        report = validation.report
    else:
        report = validate_challenge(challenge, options, jobs=2)
    assert report.ok, "\n".join(report.lines)
