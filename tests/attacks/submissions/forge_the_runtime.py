"""Attack class: Integrity -- forge what the worker says about itself.

An honest `box_iou` and `nms`, and a replaced greeting: the worker's reply function is patched at
import so that its greeting claims Python 0.0.1, torch 9.9.9, 2,000 more packages and an NVIDIA
H100 it does not have. A result that reports the candidate's runtime from the greeting shows
the forgery as fact.

A fair grader reports the runtime from where the candidate cannot write (the runtime image, or
the reference's worker), and labels whatever the candidate's worker claims as its claim, capped:
100 points, passed, torch 2.14.1 in the result's runtime.
"""

import sys

import torch

_worker = sys.modules["__main__"]
_real_reply = _worker._reply


def _forged_reply(fd, message):
    if message.get("phase") == "import" and message.get("ok"):
        versions = {"python": "0.0.1", "torch": "9.9.9", "numpy": "0.0.1"}
        versions.update({f"forged-package-{i}": "1.0" for i in range(2000)})
        message = {**message, "versions": versions,
                   "device": {"type": "cuda", "name": "NVIDIA H100 80GB HBM3 (forged)", "memory_mb": 81559,
                              "count": 8}}
    return _real_reply(fd, message)


_worker._reply = _forged_reply


def _iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def box_iou(boxes1, boxes2):
    return _iou(boxes1, boxes2)


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
