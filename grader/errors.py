"""The errors of cvgrade, each with the exit code the CLI returns for it.

A candidate's failure is never an exception: it is data in the result
(``harness.sandbox.Outcome``). Exceptions are for bad input, bad challenges and
broken infrastructure::

    CvgradeError                 exit 3  something of ours failed
    +-- BadSubmission            exit 2  the submission cannot be graded as given
    +-- ChallengeError           exit 2  the challenge is unknown or malformed
    +-- InfrastructureError      exit 3  sandbox, judge or machine failure: not gradable

Exit codes 0 and 1 are verdicts: passed, and graded but not passed. ``ExitCode`` names all
four, and is the one place they are spelled: the results (``grader.results``), every error
here, and the service's errors and commands (``api.errors``, ``api/cli.py``) take theirs from it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``cvgrade`` exits with: a verdict (0, 1) or the kind of thing that went wrong (2, 3)."""

    PASSED = 0
    NOT_PASSED = 1  # graded, not passed
    BAD_INPUT = 2  # the submission, the challenge or the command's input is at fault
    OUR_FAILURE = 3  # not gradable: something of ours failed (sandbox, judge, machine, set-up)


class CvgradeError(Exception):
    """Base of our errors. ``exit_code`` is what the CLI exits with; ``http_status`` what the API answers."""

    exit_code: ExitCode = ExitCode.OUR_FAILURE
    http_status = 500


class BadSubmission(CvgradeError):
    """The submission is malformed or unsafe (broken notebook, hostile zip, too large)."""

    exit_code = ExitCode.BAD_INPUT
    http_status = 422


class ChallengeError(CvgradeError):
    """The challenge does not exist or its files are malformed."""

    exit_code = ExitCode.BAD_INPUT
    http_status = 404


class InfrastructureError(CvgradeError):
    """Our side failed: no sandbox, a crashed judge. The grading is not charged to the candidate."""

    exit_code = ExitCode.OUR_FAILURE
    http_status = 503
