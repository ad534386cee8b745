"""Known bad: forgets to clamp the overlap at 0, so disjoint boxes get a non-zero IoU."""

import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    """Area of each (x1, y1, x2, y2) box, in the boxes' dtype."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of boxes1 [N, 4] and boxes2 [M, 4] as an [N, M] tensor.

    Continuous coordinates (no +1). A pair whose union is zero has IoU 0.
    The result has the inputs' dtype and device; the inputs are not modified.
    """
    x1 = torch.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    y1 = torch.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    x2 = torch.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    y2 = torch.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    inter = (x2 - x1) * (y2 - y1)
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    positive = union > 0
    # Divide by 1 where the union is zero (there the intersection is zero too): 0, never NaN.
    return inter / torch.where(positive, union, torch.ones_like(union))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Returns the int64 indices of the kept boxes in decreasing score order. A box
    is suppressed when its IoU with an already kept box is strictly greater than
    ``iou_threshold``.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        overlap = box_iou(boxes[best].unsqueeze(0), boxes[rest])[0]
        order = rest[overlap <= iou_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    return torch.stack(keep).to(torch.int64)
