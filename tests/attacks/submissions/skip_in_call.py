"""Attack class: Integrity -- skip instead of fail, from inside a call.

`box_iou` raises `unittest.SkipTest`; `nms` calls `pytest.skip()`, `pytest.xfail()` or
`pytest.exit()` depending on its input. Raised inside the judge's own process these would
mark the check skipped or xfailed, or stop the whole session. A fair grader runs the call
in another process: the exception is only data, each of those checks fails with outcome
"raised", nothing is recorded as skipped, and the score is 0.
"""

import unittest

import pytest


def box_iou(boxes1, boxes2):
    raise unittest.SkipTest("box_iou is tested elsewhere")


def nms(boxes, scores, iou_threshold):
    kind = boxes.shape[0] % 3
    if kind == 0:
        pytest.skip("nms: flaky on this platform")
    if kind == 1:
        pytest.xfail("nms: known issue")
    pytest.exit("nms: all done", returncode=0)
