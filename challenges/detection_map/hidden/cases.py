"""Detections and ground truths for the hidden checks of `detection_map`, made from seeds.

Random sets keep every IoU between a detection and a ground truth of its class and image at
least IOU_MARGIN away from each of the ten thresholds, and give every class a number of ground
truths prime to 10, so that no recall lands exactly on one of the 101 recall points except 0 and
1: then float32 arithmetic and any way of writing the thresholds agree with COCO's float64.

Not a test module: the test files import it by name (the judge puts this folder on sys.path).
"""

from __future__ import annotations

import math

import numpy as np
import torch

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
IOU_MARGIN = 1e-4


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _near_threshold(det: np.ndarray, gts: np.ndarray) -> bool:
    if not len(gts):
        return False
    ious = pairwise_iou(det[None], gts)[0]
    return bool((np.abs(ious[:, None] - IOU_THRESHOLDS[None, :]) < IOU_MARGIN).any())


def dataset(seed: int, num_images: int, num_classes: int, *, truths_per_image: float = 4.0,
            false_positives_per_image: float = 3.0, dtype: torch.dtype = torch.float32,
            score_levels: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A detector's output on ``num_images`` images: noisy copies of the ground truths (some missed,
    some duplicated), false positives, scores that favour good boxes; shuffled, not grouped by image.

    ``score_levels``: round scores to this many levels, so that many are equal.
    """
    rng = np.random.default_rng(seed)
    gt_images = np.repeat(np.arange(num_images), rng.poisson(truths_per_image, num_images))
    gt_labels = rng.integers(0, num_classes, len(gt_images))
    # every class's count of ground truths prime to 10 (or 0): drop one where it is not
    keep = np.ones(len(gt_labels), dtype=bool)
    for c in range(num_classes):
        rows = np.flatnonzero(gt_labels == c)
        while len(rows) and math.gcd(len(rows), 10) != 1:
            keep[rows[-1]] = False
            rows = rows[:-1]
    gt_images, gt_labels = gt_images[keep], gt_labels[keep]
    centre = rng.uniform(0, 640, (len(gt_images), 2))
    size = rng.uniform(8, 200, (len(gt_images), 2))
    gt_boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)

    det_boxes, det_labels, det_images, det_scores = [], [], [], []

    def add(box: np.ndarray, label: int, image: int, score: float) -> None:
        same = (gt_images == image) & (gt_labels == label)
        for _ in range(20):
            if not _near_threshold(box, gt_boxes[same]):
                break
            box = box + rng.normal(0, 0.5, 4) * [1, 1, 1, 1]
            box[2:] = np.maximum(box[2:], box[:2])
        else:
            return
        det_boxes.append(box)
        det_labels.append(label)
        det_images.append(image)
        det_scores.append(score)

    for index in range(len(gt_images)):
        for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
            jitter = rng.normal(0, rng.choice([0.02, 0.08, 0.2]), 4) * np.r_[size[index], size[index]]
            box = gt_boxes[index] + jitter
            box[2:] = np.maximum(box[2:], box[:2] + 1)
            quality = float(pairwise_iou(box[None], gt_boxes[index][None])[0, 0])
            label = int(gt_labels[index]) if rng.random() > 0.05 else int(rng.integers(0, num_classes))
            add(box, label, int(gt_images[index]), float(np.clip(quality + rng.normal(0, 0.25), 0.001, 1)))
    for _ in range(rng.poisson(false_positives_per_image * num_images)):
        corner = rng.uniform(0, 600, 2)
        box = np.r_[corner, corner + rng.uniform(5, 150, 2)]
        add(box, int(rng.integers(0, num_classes)), int(rng.integers(0, num_images)), float(rng.uniform(0.001, 0.6)))

    scores = np.array(det_scores)
    if score_levels:
        scores = np.ceil(scores * score_levels) / score_levels
    order = rng.permutation(len(det_scores))
    detections = {
        "boxes": torch.tensor(np.array(det_boxes).reshape(-1, 4)[order], dtype=dtype),
        "scores": torch.tensor(scores[order] if len(scores) else scores, dtype=dtype),
        "labels": torch.tensor(np.array(det_labels, dtype=np.int64)[order]),
        "image_ids": torch.tensor(np.array(det_images, dtype=np.int64)[order]),
    }
    shuffle = rng.permutation(len(gt_images))
    ground_truths = {
        "boxes": torch.tensor(gt_boxes[shuffle], dtype=dtype),
        "labels": torch.tensor(gt_labels[shuffle], dtype=torch.int64),
        "image_ids": torch.tensor(gt_images[shuffle], dtype=torch.int64),
    }
    return detections, ground_truths


def large_dataset(seed: int, num_images: int, num_classes: int, *, truths_per_image: float = 3.0,
                  false_positives_per_image: float = 3.0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Like ``dataset`` but vectorised, for thousands of images, and without keeping IoUs off the thresholds:
    only for the speed check, which compares outputs with a loose tolerance."""
    rng = np.random.default_rng(seed)
    gt_images = np.repeat(np.arange(num_images), rng.poisson(truths_per_image, num_images))
    gt_labels = rng.integers(0, num_classes, len(gt_images))
    centre = rng.uniform(0, 640, (len(gt_images), 2))
    size = rng.uniform(8, 200, (len(gt_images), 2))
    gt_boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    copies = rng.choice([0, 1, 1, 1, 2], len(gt_images))
    source = np.repeat(np.arange(len(gt_images)), copies)
    spread = rng.choice([0.02, 0.08, 0.2], len(source))[:, None]
    found = gt_boxes[source] + rng.normal(0, 1, (len(source), 4)) * spread * np.tile(size[source], 2)
    found[:, 2:] = np.maximum(found[:, 2:], found[:, :2] + 1)
    fp_count = rng.poisson(false_positives_per_image * num_images)
    corner = rng.uniform(0, 600, (fp_count, 2))
    wrong = np.concatenate([corner, corner + rng.uniform(5, 150, (fp_count, 2))], axis=1)
    boxes = np.concatenate([found, wrong])
    labels = np.concatenate([gt_labels[source], rng.integers(0, num_classes, fp_count)])
    images = np.concatenate([gt_images[source], rng.integers(0, num_images, fp_count)])
    scores = np.concatenate([np.clip(1 - 3 * spread[:, 0] + rng.normal(0, 0.2, len(source)), 0.001, 1),
                             rng.uniform(0.001, 0.6, fp_count)])
    order = rng.permutation(len(scores))
    detections = {"boxes": torch.tensor(boxes[order], dtype=torch.float32),
                  "scores": torch.tensor(scores[order], dtype=torch.float32),
                  "labels": torch.tensor(labels[order], dtype=torch.int64),
                  "image_ids": torch.tensor(images[order], dtype=torch.int64)}
    ground_truths = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32),
                     "labels": torch.tensor(gt_labels, dtype=torch.int64),
                     "image_ids": torch.tensor(gt_images, dtype=torch.int64)}
    return detections, ground_truths
