"""Known good: the textbook variant. box_iou with unbind and a zero-union mask; nms computes the
whole IoU matrix once, then walks the boxes by score with a "suppressed" flag per box (as many
C++ implementations do). Written differently from the reference, and just as right."""

import torch
from torch import Tensor


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    ax1, ay1, ax2, ay2 = (c[:, None] for c in boxes1.unbind(dim=1))
    bx1, by1, bx2, by2 = (c[None, :] for c in boxes2.unbind(dim=1))
    width = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0)
    height = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0)
    inter = width * height
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    order = torch.argsort(scores, descending=True, stable=True)
    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(rank)
        suppressed |= overlaps[rank].cpu()
    return order[torch.tensor(keep, dtype=torch.int64, device=boxes.device)]
