"""Known good: YOLO-family style (ultralytics' `box_iou`): corners by `chunk`, the intersection
by `prod`, and `eps = 1e-7` added to the union instead of a zero-union branch. NMS as a
matrix-mask loop: the IoU matrix of the score-sorted boxes once, its upper triangle thresholded,
then one pass that drops every box a kept box overlaps too much."""

import torch


def box_iou(box1, box2, eps=1e-7):
    """IoU of every pair from box1 [N, 4] and box2 [M, 4] (x1, y1, x2, y2), as an [N, M] tensor."""
    (a1, a2), (b1, b2) = box1.unsqueeze(1).chunk(2, 2), box2.unsqueeze(0).chunk(2, 2)
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(0).prod(2)
    # IoU = inter / (area1 + area2 - inter); eps keeps 0 / 0 away for zero-area boxes
    return inter / ((a2 - a1).prod(2) + (b2 - b1).prod(2) - inter + eps)


def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    sorted_boxes = boxes[order]
    # suppress[i, j]: box i (better scored) overlaps box j (worse) too much
    suppress = box_iou(sorted_boxes, sorted_boxes).triu(diagonal=1) > iou_threshold
    keep = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if keep[i]:
            keep &= ~suppress[i]
    return order[keep]
