"""Attack class: Availability -- block in a call, long enough for the grading to be interrupted
(Ctrl-C on `cvgrade grade`) or its judge to die (killed, out of memory) meanwhile.

`box_iou` and `nms` print a marker line (the test waits for it in the container's log, to know
the judge is inside a check) and then sleep for an hour; each would time out at its check's
limit. The test does not wait for that: it interrupts the grader, or kills its judge, while
the first check runs.

A fair grader leaves nothing behind however its grading ends: Ctrl-C stops the judge and
removes every worker container before `cvgrade` exits with a non-zero code; when the judge
is killed, the grader removes the dead judge's containers itself; and when the grader dies
too, its containers carry the owner's label, so `cvgrade janitor` (or the next `cvgrade
grade`) removes them.
"""

import sys
import time

MARKER = "cvgrade-attack-suite: sleeping in a call"


def box_iou(boxes1, boxes2):
    print(MARKER, flush=True)
    sys.stdout.flush()
    time.sleep(3600)


def nms(boxes, scores, iou_threshold):
    print(MARKER, flush=True)
    time.sleep(3600)
