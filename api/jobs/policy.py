"""The one rule for grading one job, whichever runner holds it (``pool`` in the service, or a fleet grader).

``grade_job`` turns everything that can happen to a grading into a ``JobOutcome``:

==============================================  ==============  =======
what happened                                   state           charged
==============================================  ==============  =======
graded (whatever the score)                     done            yes
the grader refused the submission               failed          yes
  (``BadSubmission``: uploads are checked first, so this is rare)
the challenge is gone, or another version       not_gradable    no
  than the one the submission was made for
our side failed: the sandbox, the grader         not_gradable    no
  (a result with status ``error``, or any exception)
==============================================  ==============  =======

What the runners add around it is theirs: the pool's queue and shutdown, the fleet's delivery count
and checksum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from api.backend_check import plain_problem
from api.errors import NotFound
from api.jobs.queue import JobOutcome
from api.jobs.state import JobState
from grader.challenge import Challenge
from grader.errors import BadSubmission, CvgradeError, InfrastructureError
from grader.grading import GradeOptions, grade_submission, keep_standby
from grader.results import GradeResult

log = logging.getLogger("cvgrade.api.jobs.policy")
GradeFunction = Callable[[Path, Challenge, GradeOptions], GradeResult]


def grade_job(
    *,
    job_id: int,
    challenge_version: str,
    challenge: Callable[[], Challenge],
    submission: Callable[[], AbstractContextManager[Path]],
    grade: GradeFunction,
    options: GradeOptions,
    where: str = "",
) -> JobOutcome:
    """Grade one job and say what it comes to (the table above).

    ``challenge`` loads the challenge (``NotFound`` or ``CvgradeError`` when it cannot);
    ``submission`` gives the submitted file, ready to grade, for as long as it is entered;
    ``where`` names the host in messages (" on worker NAME"), empty in the service itself.
    """
    try:
        loaded = challenge()
        if loaded.version != challenge_version:
            return _not_gradable(
                f"the challenge {loaded.id} is now version {loaded.version}{where}; this submission was made "
                f"for version {challenge_version}")
        with submission() as path:
            result = grade(path, loaded, options)
    except NotFound as err:
        return _not_gradable(err.message)
    except BadSubmission as err:
        return JobOutcome(JobState.FAILED, None, str(err), charged=True)
    except InfrastructureError as err:  # the sandbox is gone: a plain sentence for the team, the rest logged
        log.error("job %s cannot be graded%s: %s", job_id, where, err)
        return _not_gradable(plain_problem(options.backend, str(err)))
    except CvgradeError as err:
        return _not_gradable(str(err))
    except Exception as err:
        log.exception("grading job %s failed%s", job_id, where)
        return _not_gradable(f"the service failed{where}: {type(err).__name__}: {err}")
    _stand_by_for_the_next(loaded, grade, options, where)
    if result.status == "error":
        return JobOutcome(JobState.NOT_GRADABLE, result, result.error, charged=False)
    return JobOutcome(JobState.DONE, result, None, charged=True)


def _stand_by_for_the_next(challenge: Challenge, grade: GradeFunction, options: GradeOptions, where: str) -> None:
    """Start the workers of the next job of this challenge now, while this host waits for it (``grader.standby``).

    Jobs of a hiring round come in runs of one challenge; a job of another challenge discards it.
    """
    if grade is not grade_submission:
        return  # a grade function of a test's: nothing of the grader's to start
    try:
        keep_standby(challenge, options)
    except Exception:  # the next job starts its own workers, as it would without one
        log.exception("a standby for the next job of %s could not be started%s", challenge.id, where)


def _not_gradable(error: str) -> JobOutcome:
    return JobOutcome(JobState.NOT_GRADABLE, None, error, charged=False)
