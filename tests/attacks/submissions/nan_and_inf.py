"""Attack class: Integrity -- NaN and Inf against NaN-unsafe checks.

`box_iou` returns tensors of the right shape and dtype filled with NaN (float64 and float16
inputs) or +Inf (float32 inputs). Against checks written as `not (err > tol)`, `max()` over a
list holding NaN, or `assert_allclose(..., equal_nan=True)`, such outputs pass. `nms` is
written honestly.

A fair grader compares with NaN never equal and Inf never close: every `box_iou` check that
compares values fails; `box_iou_dtype_device` (the dtype and device are right),
`inputs_unchanged` (which only looks at the inputs) and the four `nms` checks pass: 55 of 100
points, not passed (the `box_iou` accuracy gates fail).
"""

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
    fill = float("inf") if boxes1.dtype == torch.float32 else float("nan")
    return torch.full((boxes1.shape[0], boxes2.shape[0]), fill, dtype=boxes1.dtype, device=boxes1.device)


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
