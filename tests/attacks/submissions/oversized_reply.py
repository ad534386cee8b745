"""Attack class: Availability -- exhaust the trusted side with a reply the channel's bounds still allow.

An honest `nms`; `box_iou` answers its first call with a 1 GB tensor, which a check that allows
large replies (`max_reply_mb`, set high in the test's copy of the challenge) lets through the
channel, and which the judge must then hold in memory. With the judge's own memory limit set
below what that takes, the judge breaks its limit while it handles the reply.

A fair grader charges that breach to the candidate: the check ends `out_of_memory`, naming the
judge's limit, the grading is `graded` (never "not gradable", which would be a free attempt),
and the judge never grows past its limit.
"""

import torch

CALLS = [0]


def box_iou(boxes1, boxes2):
    CALLS[0] += 1
    if CALLS[0] == 1:
        return torch.ones(250_000_000, dtype=torch.float32)
    return _iou(boxes1, boxes2)


def _iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


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
