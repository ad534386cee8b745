"""Known bad: marks a class without ground truth with NaN instead of -1."""

from __future__ import annotations

import numpy as np
import torch

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU [len(a), len(b)] of (x1, y1, x2, y2) boxes, 0 where the union is 0."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(ious: np.ndarray) -> np.ndarray:
    """Greedy matching of score-ordered detections (rows) to ground truths (columns), per threshold.

    Returns tp [T, D]: whether each detection matched an unmatched ground truth with IoU >= t.
    Among several candidates the highest IoU wins, and of equal ones the last ground truth.
    """
    thresholds = IOU_THRESHOLDS[:, None]
    num_dets, num_gts = ious.shape
    taken = np.zeros((len(IOU_THRESHOLDS), num_gts), dtype=bool)
    tp = np.zeros((len(IOU_THRESHOLDS), num_dets), dtype=bool)
    rows = np.arange(len(IOU_THRESHOLDS))
    for d in range(num_dets):
        candidates = (ious[d][None, :] >= thresholds) & ~taken
        found = candidates.any(axis=1)
        if not found.any():
            continue
        masked = np.where(candidates, ious[d][None, :], -1.0)
        best = num_gts - 1 - np.argmax(masked[:, ::-1], axis=1)  # the last of the highest
        tp[found, d] = True
        taken[rows[found], best[found]] = True
    return tp


def _average_precision(tp: np.ndarray, scores: np.ndarray, num_truths: int) -> np.ndarray:
    """AP [T] from tp [T, D] of detections in (image, score) order, with 101-point interpolation."""
    order = np.argsort(-scores, kind="mergesort")  # stable: equal scores keep image order
    tp = tp[:, order]
    tps = np.cumsum(tp, axis=1, dtype=np.float64)
    fps = np.cumsum(~tp, axis=1, dtype=np.float64)
    ap = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        recall = tps[t] / num_truths
        precision = tps[t] / (tps[t] + fps[t] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision at any higher recall
        at = np.searchsorted(recall, RECALL_POINTS, side="left")
        ap[t] = np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean() \
            if len(precision) else 0.0
    return ap


def _as_numpy(data: dict, key: str, dtype) -> np.ndarray:
    return data[key].detach().cpu().numpy().astype(dtype)


def coco_map(detections: dict, ground_truths: dict, num_images: int, num_classes: int) -> dict:
    """COCO's AP per class and IoU threshold, mAP, AP50 and AP75 (see README.md)."""
    det_boxes = _as_numpy(detections, "boxes", np.float64).reshape(-1, 4)
    det_scores = _as_numpy(detections, "scores", np.float64)
    det_labels = _as_numpy(detections, "labels", np.int64)
    det_images = _as_numpy(detections, "image_ids", np.int64)
    gt_boxes = _as_numpy(ground_truths, "boxes", np.float64).reshape(-1, 4)
    gt_labels = _as_numpy(ground_truths, "labels", np.int64)
    gt_images = _as_numpy(ground_truths, "image_ids", np.int64)

    # Detections by (class, image, score descending, input order); ground truths by (class, image, input order).
    det_order = np.lexsort((np.arange(len(det_scores)), -det_scores, det_images, det_labels))
    gt_order = np.lexsort((np.arange(len(gt_labels)), gt_images, gt_labels))
    det_keys = det_labels[det_order] * num_images + det_images[det_order]
    gt_keys = gt_labels[gt_order] * num_images + gt_images[gt_order]
    det_group_starts = np.flatnonzero(np.r_[True, det_keys[1:] != det_keys[:-1]]) if len(det_keys) else []
    det_groups = np.split(det_order, det_group_starts[1:]) if len(det_keys) else []

    ap = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    truths_per_class = np.bincount(gt_labels, minlength=num_classes)
    per_class: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in range(num_classes)}
    for group in det_groups:
        group = group[:MAX_DETECTIONS]  # the 100 best of this image and class
        label, image = int(det_labels[group[0]]), int(det_images[group[0]])
        key = label * num_images + image
        lo, hi = np.searchsorted(gt_keys, key, "left"), np.searchsorted(gt_keys, key, "right")
        truths = gt_order[lo:hi]
        if len(truths):
            tp = _match(_iou(det_boxes[group], gt_boxes[truths]))
        else:
            tp = np.zeros((len(IOU_THRESHOLDS), len(group)), dtype=bool)
        per_class[label].append((tp, det_scores[group]))
    for c in range(num_classes):
        if truths_per_class[c] == 0:
            continue  # no ground truth: AP undefined (-1), and left out of the means
        if per_class[c]:
            tp = np.concatenate([tp for tp, _ in per_class[c]], axis=1)  # groups are in image order
            scores = np.concatenate([s for _, s in per_class[c]])
            ap[c] = _average_precision(tp, scores, int(truths_per_class[c]))
        else:
            ap[c] = 0.0
    defined = truths_per_class > 0

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else -1.0

    return {
        "ap": torch.from_numpy(ap),
        "ap_per_class": torch.from_numpy(np.where(defined, ap.mean(axis=1), np.nan)),
        "map": mean(ap[defined]),
        "map_50": mean(ap[defined, 0]),
        "map_75": mean(ap[defined, 5]),
    }
