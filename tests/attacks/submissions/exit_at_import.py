"""Attack class: Integrity -- exit early with a clean status (`os._exit(0)` at import).

The candidate prints what a naive grader's log scraper would take for success and leaves
with exit status 0 before the grader has called anything. A fair grader counts a check only
when its judge recorded it as passed: every check fails (the solution could not be
imported), the score is 0, and the grading itself is still "graded".
"""

import os
import sys

print("============================= test session starts ==============================")
print("collected 10 items")
print("All tests passed! score 100/100")
print("========================= 10 passed in 0.42s ==============================")
sys.stdout.flush()
os._exit(0)


def box_iou(boxes1, boxes2):
    raise AssertionError("never reached")


def nms(boxes, scores, iou_threshold):
    raise AssertionError("never reached")
