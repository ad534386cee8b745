"""Attack class: Availability -- bloat the result (stored per submission, rendered by the dashboard).

Lifts the worker's own cap on exception messages (a global in the worker's module), then makes
every call print 30 kB and raise an exception with a 1.5 MB message, which the worker's
traceback repeats: about 3 MB of text per check, 30 MB over the ten checks of `iou`.

A fair grader caps every text the worker sends on the judge's side and the result's candidate
text in all (256 KB): every check ends `raised`, 0 points, and the result stays small.
"""

import sys

sys.modules["__main__"].MAX_MESSAGE_CHARS = 1 << 30

MESSAGE = "bloat " * 250_000  # 1.5 MB


def _bloat():
    print("noise " * 5_000)  # 30 kB a call: the ten checks stay under the 1 MB output limit
    raise RuntimeError(MESSAGE)


def box_iou(boxes1, boxes2):
    _bloat()


def nms(boxes, scores, iou_threshold):
    _bloat()
