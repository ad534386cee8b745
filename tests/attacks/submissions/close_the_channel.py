"""Attack class: Integrity / Availability -- tamper with the worker's channel to the judge.

At import the candidate closes every file descriptor above stderr, which includes the
pipes the worker uses to talk to the judge, hoping to leave the judge waiting forever (or
to make the grader crash on a broken pipe and report an error that is "not the candidate's
fault"). A fair grader notices the worker is gone: every check fails because the solution
could not be imported, the score is 0, and the grading status is "graded", never "error".
"""

import os

os.closerange(3, 65536)


def box_iou(boxes1, boxes2):
    raise AssertionError("never reached")


def nms(boxes, scores, iou_threshold):
    raise AssertionError("never reached")
