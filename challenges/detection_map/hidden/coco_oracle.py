"""The hidden checks' oracle for `detection_map`: pycocotools' COCOeval, run here in the judge only.

pycocotools is not in the candidate's runtime: the Docker image does not have it, and the local
sandbox hides its folder (harness/local.py). The checks build COCO data sets from the same
tensors the candidate gets, run COCOeval for bounding boxes with its default parameters (IoU
0.50:0.05:0.95, 101 recall points, area "all", at most 100 detections per image and class), and
read AP per class and threshold from its precision array.

Not a test module: the test files import it by name (the judge puts this folder on sys.path).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _annotations(data: dict[str, torch.Tensor], *, with_scores: bool) -> list[dict[str, Any]]:
    boxes = data["boxes"].detach().to(torch.float64).numpy().reshape(-1, 4)
    labels = data["labels"].numpy().tolist()
    images = data["image_ids"].numpy().tolist()
    scores = data["scores"].detach().to(torch.float64).numpy().tolist() if with_scores else None
    annotations = []
    for index, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        width, height = x2 - x1, y2 - y1
        annotation = {"id": index + 1,  # COCOeval treats id 0 as "unmatched": ids start at 1
                      "image_id": images[index], "category_id": labels[index], "bbox": [x1, y1, width, height],
                      "area": width * height, "iscrowd": 0}
        if scores is not None:
            annotation["score"] = scores[index]
        annotations.append(annotation)
    return annotations


def coco_eval(detections: dict[str, torch.Tensor], ground_truths: dict[str, torch.Tensor], num_images: int,
              num_classes: int) -> dict[str, Any]:
    """COCOeval's figures: {"ap": float64 [K, 10] (-1 for a class without ground truth), "ap_per_class",
    "map", "map_50", "map_75"}."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i} for i in range(num_images)]
    categories = [{"id": c} for c in range(num_classes)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "categories": categories,
                      "annotations": _annotations(ground_truths, with_scores=False)}
        gt.createIndex()
        dt = COCO()  # not loadRes: it refuses an empty list of detections
        dt.dataset = {"images": images, "categories": categories,
                      "annotations": _annotations(detections, with_scores=True)}
        dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.imgIds = list(range(num_images))
        evaluator.params.catIds = list(range(num_classes))
        evaluator.evaluate()
        evaluator.accumulate()
    # precision [T, R, K, A, M]: area "all" is A = 0, maxDets 100 is M = 2
    precision = evaluator.eval["precision"][:, :, :, 0, 2]
    defined = precision[:, 0, :] > -1  # [T, K]
    ap = np.where(defined, precision.mean(axis=1), -1.0).T  # [K, T]
    has_truth = defined.all(axis=0)

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else -1.0

    return {
        "ap": torch.from_numpy(ap),
        "ap_per_class": torch.from_numpy(np.where(has_truth, ap.mean(axis=1), -1.0)),
        "map": mean(ap[has_truth]),
        "map_50": mean(ap[has_truth, 0]),
        "map_75": mean(ap[has_truth, 5]),
    }
