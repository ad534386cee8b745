"""Attack class: Integrity -- plant test configuration next to the solution: `conftest.py`,
`pytest.ini`, `pyproject.toml`, `setup.cfg`, `tox.ini`, `sitecustomize.py`,
`usercustomize.py`, a `*.pth` file and a `*.dist-info` with a `pytest11` entry point.

This folder (graded as a folder and as a zip of it) holds a WRONG solution (IoU 0.5
everywhere, nms keeps nothing) beside every file that would configure or extend a test
runner started in, or with, this folder: hooks that turn every report into "passed",
`addopts` that load a plugin, an import-time patch of the comparison functions. Each
planted file that runs leaves a file named `cvgrade-plant-ran-<name>` in the temporary
folder of whoever ran it.

A fair grader lets nothing from the submission configure or extend the judge: the wrong
solution scores what it scores without the plants (only `inputs_unchanged` and
`box_iou_dtype_device`, 15 of 100), and
no planted file runs in the judge.
"""

import torch


def box_iou(boxes1, boxes2):
    return torch.full((boxes1.shape[0], boxes2.shape[0]), 0.5, dtype=boxes1.dtype, device=boxes1.device)


def nms(boxes, scores, iou_threshold):
    return torch.empty(0, dtype=torch.int64, device=boxes.device)
