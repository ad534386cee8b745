"""Attack class: Integrity -- raise `SystemExit`, `KeyboardInterrupt` or `GeneratorExit` from a call.

Exceptions outside `Exception` slip past a careless `except Exception` in a test runner and
can end the run "cleanly" (SystemExit(0)), look like the operator pressing Ctrl-C, or stop
a generator-based harness. Here `box_iou` raises SystemExit(0), and `nms` raises
KeyboardInterrupt or GeneratorExit depending on its input. A fair grader reports each call
as having raised that exception, fails those checks (score 0), keeps grading the rest, and
stays "graded".
"""

import torch


def box_iou(boxes1, boxes2):
    raise SystemExit(0)


def nms(boxes, scores, iou_threshold):
    if boxes.shape[0] % 2:
        raise GeneratorExit()
    raise KeyboardInterrupt()
