"""Your solution to the `detection_map` challenge. Read README.md for the full statement.

Run the public checks with `cvgrade test DIR` and grade yourself with
`cvgrade grade DIR/solution.py --challenge detection_map`.
"""

import numpy as np
import torch
from torch import Tensor

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # 0.50, 0.55, ..., 0.95, as COCO writes them
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # 0.00, 0.01, ..., 1.00
MAX_DETECTIONS = 100  # per image and class


def coco_map(detections: dict, ground_truths: dict, num_images: int, num_classes: int) -> dict:
    """COCO-style average precision for bounding boxes.

    Args:
        detections: {"boxes": [D, 4] (x1, y1, x2, y2), "scores": [D], "labels": [D] int64 in 0..num_classes-1,
            "image_ids": [D] int64 in 0..num_images-1}. In any order.
        ground_truths: {"boxes": [G, 4], "labels": [G], "image_ids": [G]}.
        num_images, num_classes: how many images and classes there are (some may have nothing).

    Returns:
        {"ap": float tensor [num_classes, 10], the AP of each class at each IoU threshold (-1 for a class
         without ground truth), "ap_per_class": [num_classes], each row's mean (-1 likewise),
         "map": the mean of ap over the classes with ground truth, "map_50": the same at IoU 0.50,
         "map_75": at IoU 0.75 (each -1 when no class has ground truth)}.
    """
    raise NotImplementedError("write coco_map")
