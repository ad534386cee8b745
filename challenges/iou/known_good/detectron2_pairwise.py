"""Known good: detectron2 style (`pairwise_intersection` and `pairwise_iou` of
detectron2.structures.boxes): width and height clamped in place on a fresh tensor, and the IoU
taken only where the intersection is positive (`torch.where(inter > 0, ..., 0)`). NMS as a
sorted loop over the boxes with a boolean `removed` mask, one IoU row per kept box."""

import torch


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def pairwise_intersection(boxes1, boxes2):
    """Intersection area of every pair, [N, M]."""
    width_height = torch.min(boxes1[:, None, 2:], boxes2[:, 2:]) - torch.max(
        boxes1[:, None, :2], boxes2[:, :2]
    )  # [N, M, 2]
    width_height.clamp_(min=0)  # [N, M, 2]
    return width_height.prod(dim=2)  # [N, M]


def pairwise_iou(boxes1, boxes2):
    """IoU of every pair, [N, M]; 0 where the boxes do not overlap (so never 0 / 0)."""
    area1 = box_area(boxes1)  # [N]
    area2 = box_area(boxes2)  # [M]
    inter = pairwise_intersection(boxes1, boxes2)
    # handle empty boxes
    return torch.where(
        inter > 0,
        inter / (area1[:, None] + area2 - inter),
        torch.zeros(1, dtype=inter.dtype, device=inter.device),
    )


def box_iou(boxes1, boxes2):
    return pairwise_iou(boxes1, boxes2)


def nms(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True).indices
    removed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for idx in order.tolist():
        if removed[idx]:
            continue
        keep.append(idx)
        removed |= pairwise_iou(boxes[idx:idx + 1], boxes)[0] > iou_threshold
    return torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)
