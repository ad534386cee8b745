"""Attack class: Integrity -- exit early with a clean status, in a call.

`nms` is written honestly; `box_iou` prints a success banner and leaves with `os._exit(0)`
the moment the judge calls it, hoping the grader reads a clean exit as "all checks passed".
A fair grader fails every check that called `box_iou` (the solution's process crashed
during the call) and still grades the honest `nms` on its merits: 40 of 100 points, not
passed, grading status "graded".
"""

import os
import sys

import torch


def _iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def box_iou(boxes1, boxes2):
    print("All tests passed! score 100/100")
    sys.stdout.flush()
    os._exit(0)


def nms(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[_iou(boxes[best].unsqueeze(0), boxes[rest])[0] <= iou_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    return torch.stack(keep).to(torch.int64)
