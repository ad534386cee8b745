"""Known bad: correct results, but a Python double loop over box pairs (far too slow)."""

import torch


def box_iou(boxes1, boxes2):
    out = torch.zeros(len(boxes1), len(boxes2), dtype=boxes1.dtype, device=boxes1.device)
    for i in range(len(boxes1)):
        ax1, ay1, ax2, ay2 = boxes1[i].tolist()
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for j in range(len(boxes2)):
            bx1, by1, bx2, by2 = boxes2[j].tolist()
            w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            h = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = w * h
            union = area_a + (bx2 - bx1) * (by2 - by1) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def nms(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        overlap = box_iou(boxes[best].unsqueeze(0), boxes[rest])[0]
        order = rest[overlap <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)
