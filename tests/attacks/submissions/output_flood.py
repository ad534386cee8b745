"""Attack class: Availability -- output floods (a gigabyte of print).

`nms` is honest; `box_iou` prints 1 GiB, 1 MiB at a time, to stdout and stderr, to fill the
grader's memory or disk, or to bury the result in noise. A fair grader captures a capped
amount of output and stops the worker when the cap is passed: every check that calls
`box_iou` ends with the named outcome "output_limit", the `nms` checks pass (40 of 100
points), and what the result shows of the output stays small.
"""

import sys

import torch

CHUNK = ("All tests passed! " * 58254)[: 1024 * 1024 - 1] + "\n"


def _iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def box_iou(boxes1, boxes2):
    for index in range(1024):
        (sys.stdout if index % 2 else sys.stderr).write(CHUNK)
    return _iou(boxes1, boxes2)


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
