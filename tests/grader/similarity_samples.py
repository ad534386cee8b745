"""Copies of the ``iou`` challenge's reference solution as people disguise them, for the similarity tests.

Each is a real edit of ``challenges/iou/reference/solution.py`` (read it beside them): ``RENAMED``
renames every variable, parameter and helper and rewrites the comments; ``REFORMATTED`` is the same
code through another formatter (line breaks, quotes, parentheses, trailing commas, no docstrings);
``REORDERED`` moves the functions around and swaps independent statements. Each still passes the
challenge: they are what a candidate who copied would hand in.
"""

from __future__ import annotations

from pathlib import Path

CHALLENGES = Path(__file__).resolve().parents[2] / "challenges"
REFERENCE = (CHALLENGES / "iou" / "reference" / "solution.py").read_text(encoding="utf-8")
KNOWN_GOOD = (CHALLENGES / "iou" / "known_good" / "iou_matrix_nms.py").read_text(encoding="utf-8")

RENAMED = '''"""My IoU and NMS."""

import torch
from torch import Tensor


def area_of(b: Tensor) -> Tensor:
    # width times height
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(first: Tensor, second: Tensor) -> Tensor:
    """IoU of every pair."""
    left = torch.maximum(first[:, None, 0], second[None, :, 0])
    top = torch.maximum(first[:, None, 1], second[None, :, 1])
    right = torch.minimum(first[:, None, 2], second[None, :, 2])
    bottom = torch.minimum(first[:, None, 3], second[None, :, 3])
    overlap = (right - left).clamp(min=0) * (bottom - top).clamp(min=0)
    total = area_of(first)[:, None] + area_of(second)[None, :] - overlap
    nonzero = total > 0
    # avoid dividing by zero
    return overlap / torch.where(nonzero, total, torch.ones_like(total))


def nms(b: Tensor, s: Tensor, thr: float) -> Tensor:
    """Greedy NMS, best first."""
    idx = torch.sort(s, descending=True, stable=True).indices
    kept = []
    while idx.numel() > 0:
        top_one = idx[0]
        kept.append(top_one)
        others = idx[1:]
        ious = box_iou(b[top_one].unsqueeze(0), b[others])[0]
        idx = others[ious <= thr]
    if not kept:
        return torch.empty(0, dtype=torch.int64, device=b.device)
    return torch.stack(kept).to(torch.int64)
'''

REFORMATTED = '''import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    return (
        (boxes[:, 2] - boxes[:, 0])
        * (boxes[:, 3] - boxes[:, 1])
    )


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    x1 = torch.maximum(
        boxes1[:, None, 0],
        boxes2[None, :, 0],
    )
    y1 = torch.maximum(
        boxes1[:, None, 1],
        boxes2[None, :, 1],
    )
    x2 = torch.minimum(
        boxes1[:, None, 2],
        boxes2[None, :, 2],
    )
    y2 = torch.minimum(
        boxes1[:, None, 3],
        boxes2[None, :, 3],
    )
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = (
        box_area(boxes1)[:, None]
        + box_area(boxes2)[None, :]
        - inter
    )
    positive = union > 0
    return inter / torch.where(
        positive, union, torch.ones_like(union),
    )


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    order = torch.sort(
        scores, descending=True, stable=True,
    ).indices
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        overlap = box_iou(
            boxes[best].unsqueeze(0), boxes[rest],
        )[0]
        order = rest[overlap <= iou_threshold]
    if not keep:
        return torch.empty(
            0, dtype=torch.int64, device=boxes.device,
        )
    return torch.stack(keep).to(torch.int64)
'''

REORDERED = '''import torch
from torch import Tensor


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Keep the best box, drop the ones overlapping it, repeat."""
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


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    x2 = torch.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    y2 = torch.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    x1 = torch.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    y1 = torch.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    positive = union > 0
    return inter / torch.where(positive, union, torch.ones_like(union))


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
'''

# The known-good solution as a copier hands it in: every name changed, comments and a docstring added.
KNOWN_GOOD_RENAMED = '''"""IoU + NMS, my version."""
import torch
from torch import Tensor


def box_iou(first: Tensor, second: Tensor) -> Tensor:
    """Pairwise IoU."""
    l1, t1, r1, b1 = (v[:, None] for v in first.unbind(dim=1))  # corners of the first set
    l2, t2, r2, b2 = (v[None, :] for v in second.unbind(dim=1))
    w = (torch.minimum(r1, r2) - torch.maximum(l1, l2)).clamp(min=0)
    h = (torch.minimum(b1, b2) - torch.maximum(t1, t2)).clamp(min=0)
    common = w * h
    total = (r1 - l1) * (b1 - t1) + (r2 - l2) * (b2 - t2) - common
    return torch.where(total > 0, common / total, torch.zeros_like(common))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS."""
    idx = torch.argsort(scores, descending=True, stable=True)
    clash = box_iou(boxes[idx], boxes[idx]) > iou_threshold
    dropped = torch.zeros(len(idx), dtype=torch.bool)
    kept = []
    for i in range(len(idx)):
        if dropped[i]:
            continue
        kept.append(i)
        dropped |= clash[i].cpu()
    return idx[torch.tensor(kept, dtype=torch.int64, device=boxes.device)]
'''
