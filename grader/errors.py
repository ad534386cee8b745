"""The errors of cvgrade, each with the exit code the CLI returns for it.

A candidate's failure is never an exception: it is data in the result
(``harness.sandbox.Outcome``). Exceptions are for bad input, bad challenges and
broken infrastructure::

    CvgradeError                 exit 3  something of ours failed
    +-- BadSubmission            exit 2  the submission cannot be graded as given
    +-- ChallengeError           exit 2  the challenge is unknown or malformed
    +-- InfrastructureError      exit 3  sandbox, judge or machine failure: not gradable

Exit codes 0 and 1 are verdicts: passed, and graded but not passed.
"""

from __future__ import annotations


class CvgradeError(Exception):
    """Base of our errors. ``exit_code`` is what the CLI exits with; ``http_status`` what the API answers."""

    exit_code = 3
    http_status = 500


class BadSubmission(CvgradeError):
    """The submission is malformed or unsafe (broken notebook, hostile zip, too large)."""

    exit_code = 2
    http_status = 422


class ChallengeError(CvgradeError):
    """The challenge does not exist or its files are malformed."""

    exit_code = 2
    http_status = 404


class InfrastructureError(CvgradeError):
    """Our side failed: no sandbox, a crashed judge. The grading is not charged to the candidate."""

    exit_code = 3
    http_status = 503
