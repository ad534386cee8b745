"""Your solution to the `iou` challenge. Read README.md for the full statement.

Write both functions with PyTorch tensor operations. Run the public checks with
`cvgrade test DIR` and grade yourself with `cvgrade grade DIR/solution.py --challenge iou`.
"""

import torch
from torch import Tensor


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union of two sets of boxes.

    Args:
        boxes1: [N, 4] floating tensor of boxes (x1, y1, x2, y2), x1 <= x2 and y1 <= y2,
            in continuous coordinates (the width is x2 - x1, no +1).
        boxes2: [M, 4] floating tensor of boxes, same dtype and device as boxes1.

    Returns:
        [N, M] tensor with the IoU of boxes1[i] and boxes2[j] at [i, j], in the inputs'
        dtype and on their device. A pair whose union has zero area has IoU 0 (never NaN).
        N or M may be 0. No Python loop over the boxes; do not modify the inputs.
    """
    raise NotImplementedError("write box_iou")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: [K, 4] floating tensor of boxes (x1, y1, x2, y2).
        scores: [K] floating tensor, the score of each box.
        iou_threshold: a box is suppressed when its IoU with an already kept box
            is strictly greater than this value.

    Returns:
        1-D int64 tensor with the indices of the kept boxes, highest score first,
        on the same device as boxes (empty when K is 0). Do not modify the inputs.
    """
    raise NotImplementedError("write nms")
