"""Attack class: Availability -- thread storms and oversubscribed threads
(`torch.set_num_threads(512)`).

At import the candidate starts 500 Python threads that never end, asks torch for 512
threads, and prints how many of its threads started and why the rest did not. `box_iou`
and `nms` are honest, but torch now wants 511 helper threads for its first large parallel
operation, and there is no room left for them.

A fair grader caps threads with the process limit (the kernel refuses thread 64 or so, so
the candidate's own process fails when it asks for more), reports every check with a named
outcome, stays "graded", and leaves no thread or process behind.
"""

import os
import sys
import threading

import torch

_forever = threading.Event()
STARTED = 0
STOPPED_BY = "nothing"
for _ in range(500):
    try:
        threading.Thread(target=_forever.wait, daemon=True).start()
    except RuntimeError as exc:
        STOPPED_BY = str(exc)
        break
    STARTED += 1
torch.set_num_threads(512)
print(f"thread report: threads_started={STARTED} stopped_by={STOPPED_BY} "
      f"torch_threads={torch.get_num_threads()} cpus_allowed={len(os.sched_getaffinity(0))}")
sys.stdout.flush()


def box_iou(boxes1, boxes2):
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
