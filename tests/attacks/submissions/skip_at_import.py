"""Attack class: Integrity -- skip instead of fail (`pytest.skip(..., allow_module_level=True)` at import).

If the candidate's module were imported by the test runner, a module-level skip would turn
every check into "skipped", which careless graders do not count as failed. A fair grader
never imports the candidate's code into the judge; in the worker the skip is just an
exception at import, so every check fails (could not be imported) and the score is 0.

Where the candidate's runtime has no pytest (the Docker backend's image), the submission
raises a look-alike of pytest's `Skipped` (a `BaseException` claiming to come from
`_pytest.outcomes`): the judge must not take a name for a verdict either.
"""

try:
    import pytest
except ImportError:

    class Skipped(BaseException):  # as _pytest.outcomes.Skipped, a BaseException
        __module__ = "_pytest.outcomes"

    raise Skipped("GPU not available on this runner; skipping the whole module") from None

pytest.skip("GPU not available on this runner; skipping the whole module", allow_module_level=True)


def box_iou(boxes1, boxes2):
    raise AssertionError("never reached")


def nms(boxes, scores, iou_threshold):
    raise AssertionError("never reached")
