"""Attack class: Isolation -- shadow packages (a `torch.py` or `numpy.py` beside the solution) to
change what trusted code imports.

Beside an honest solution this folder holds modules named like what the grader and the
worker import: `torch`, `numpy`, `torchvision`, `pytest`, `_pytest`, `pluggy`, `grader`
(with `grader.judgekit`), `harness` (with `harness.session`), the worker's own `wire` and
`candidate_worker`, and the standard library's `json`, `inspect` and `traceback`. Each one,
if imported, leaves a file named `cvgrade-shadow-ran-<name>` in the temporary folder of
whoever imported it and then fails loudly.

A fair grader never runs trusted code with the candidate's folder on its path, and loads
the worker's own modules before the candidate's folder joins `sys.path`, so the candidate's
own `import torch` gets the real torch too: the honest solution gets full marks (100 of
100, passed), and no shadow module runs anywhere.
"""

import numpy
import torch


def box_iou(boxes1, boxes2):
    assert hasattr(numpy, "ndarray") and hasattr(torch, "Tensor")
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
        order = rest[box_iou(boxes[best].unsqueeze(0), boxes[rest])[0] <= iou_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    return torch.stack(keep).to(torch.int64)
