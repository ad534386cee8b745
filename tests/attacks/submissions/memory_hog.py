"""Attack class: Availability -- memory bombs.

`box_iou` is honest; `nms` allocates memory in 64 MB blocks, touching every page, until
something stops it. A fair grader caps the worker's memory (swap included) from outside:
each call to `nms` ends with the named outcome "out_of_memory", the worker is replaced,
the `box_iou` checks still pass (53 of 100 points: `inputs_unchanged` also calls `nms` and
fails), and the grading stays "graded".
"""

import torch


def box_iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def nms(boxes, scores, iou_threshold):
    hoard = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))  # bytearray zero-fills: every page is touched
