"""Attack class: Availability -- sleep or spin forever; block in a call.

`box_iou` spins in `while True` (and ignores SIGTERM and SIGINT, hoping to outlive a polite
shutdown); `nms` is honest, except that for an empty input it blocks forever on an event
nobody sets. A fair grader enforces each check's wall-clock limit from outside the worker,
kills it, starts a fresh one for the next check, and lets the other checks report: every
check that calls `box_iou`, and `nms_empty_and_dtype`, times out; the three other `nms`
checks pass (35 of 100 points), and nothing keeps running after grading.
"""

import signal
import threading

import torch

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)


def _iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def box_iou(boxes1, boxes2):
    while True:
        pass


def nms(boxes, scores, iou_threshold):
    if boxes.shape[0] == 0:
        threading.Event().wait()
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
