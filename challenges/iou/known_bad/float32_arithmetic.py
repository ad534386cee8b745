"""Known bad: computes in float32 whatever the input dtype ("fast and good enough"), then
returns the input's dtype. The dtype and device are right; float64 boxes lose their precision:
small boxes far from the origin are off by about 1%."""

import torch
from torch import Tensor


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    dtype = boxes1.dtype
    a, b = boxes1.float(), boxes2.float()
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou = torch.where(union > 0, inter / union, torch.zeros_like(union))
    return iou.to(dtype)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(boxes[best].unsqueeze(0), boxes[rest])[0] <= iou_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    return torch.stack(keep).to(torch.int64)
