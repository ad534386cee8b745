"""Attack class: Integrity -- read the expected value from the caller's stack frame; scan memory
(`gc`, `/proc/self/mem`) for the reference output.

`box_iou` walks up its callers' frames and through every object the garbage collector
tracks, looking for a tensor of the expected [N, M] shape that it did not make itself, and
returns the first it finds. `nms` looks the same way for a 1-D int64 tensor. When they find
nothing they raise, with a report of what they saw: how many frames and objects they
scanned, the files of their callers, and how many judge-looking tensors they found.

A fair grader computes expected values in another process and sends only copies of the
inputs: nothing is found, every check fails (score 0), and the report shows only the
worker's own frames.
"""

import gc
import os
import sys

import torch

SEEN = {"frames": 0, "objects": 0, "found": 0, "files": set()}


def _candidates():
    frame = sys._getframe(1)
    while frame is not None:
        SEEN["frames"] += 1
        SEEN["files"].add(os.path.basename(frame.f_code.co_filename))
        for value in list(frame.f_locals.values()):
            yield value
        frame = frame.f_back
    for value in gc.get_objects():
        SEEN["objects"] += 1
        yield value


def _find(shape):
    for value in _candidates():
        if type(value) is torch.Tensor and tuple(value.shape) == shape:
            SEEN["found"] += 1
            return value
    return None


def _report():
    files = ",".join(sorted(SEEN["files"]))
    return (f"peek report: frames={SEEN['frames']} objects={SEEN['objects']} "
            f"judge_tensors_found={SEEN['found']} caller_files={files}")


def box_iou(boxes1, boxes2):
    found = _find((boxes1.shape[0], boxes2.shape[0]))
    if found is None:
        raise LookupError(_report())
    return found.clone()


def nms(boxes, scores, iou_threshold):
    for value in _candidates():
        if (type(value) is torch.Tensor and value.dim() == 1 and value.dtype == torch.int64
                and 0 < value.numel() <= boxes.shape[0]):
            SEEN["found"] += 1
            return value.clone()
    raise LookupError(_report())
