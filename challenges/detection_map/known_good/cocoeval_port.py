"""Known good, a port of COCOeval's own structure: dicts keyed by (image, class), an evaluate_image
function that loops over thresholds, detections and ground truths in plain Python, then an
accumulate step per class with numpy. What a candidate who knows pycocotools' source writes.
"""

from collections import defaultdict

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _iou(d, g):
    w = min(d[2], g[2]) - max(d[0], g[0])
    h = min(d[3], g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((d[2] - d[0]) * (d[3] - d[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter)


def _evaluate_image(dets, gts):
    """dets: [(score, box)] in input order; returns (scores, matched [T][D]) for the 100 best."""
    order = sorted(range(len(dets)), key=lambda i: -dets[i][0])[:100]  # sorted() is stable
    dets = [dets[i] for i in order]
    ious = [[_iou(box, g) for g in gts] for _, box in dets]
    matched = []
    for t in IOU_THRESHOLDS:
        gt_taken = [False] * len(gts)
        row = []
        for d in range(len(dets)):
            best, m = t, -1
            for g in range(len(gts)):
                if gt_taken[g] or ious[d][g] < best:
                    continue
                best, m = ious[d][g], g
            if m >= 0:
                gt_taken[m] = True
            row.append(m >= 0)
        matched.append(row)
    return [s for s, _ in dets], matched


def coco_map(detections, ground_truths, num_images, num_classes):
    import torch

    dets = defaultdict(list)
    for box, score, label, image in zip(detections["boxes"].double().tolist(), detections["scores"].double().tolist(),
                                        detections["labels"].tolist(), detections["image_ids"].tolist(), strict=True):
        dets[image, label].append((score, box))
    gts = defaultdict(list)
    for box, label, image in zip(ground_truths["boxes"].double().tolist(), ground_truths["labels"].tolist(),
                                 ground_truths["image_ids"].tolist(), strict=True):
        gts[image, label].append(box)

    ap = -np.ones((num_classes, len(IOU_THRESHOLDS)))
    for c in range(num_classes):
        npig = sum(len(gts[i, c]) for i in range(num_images) if (i, c) in gts)
        if npig == 0:
            continue
        scores, matched = [], [[] for _ in IOU_THRESHOLDS]
        for i in range(num_images):
            if (i, c) not in dets:
                continue
            s, m = _evaluate_image(dets[i, c], gts.get((i, c), []))
            scores += s
            for t in range(len(IOU_THRESHOLDS)):
                matched[t] += m[t]
        inds = np.argsort(-np.array(scores), kind="mergesort")
        for t in range(len(IOU_THRESHOLDS)):
            tps = np.array(matched[t], dtype=bool)[inds]
            tp = np.cumsum(tps).astype(float)
            fp = np.cumsum(~tps).astype(float)
            rc = tp / npig
            pr = (tp / (fp + tp + np.spacing(1))).tolist()
            for k in range(len(pr) - 1, 0, -1):
                if pr[k] > pr[k - 1]:
                    pr[k - 1] = pr[k]
            q = np.zeros(len(RECALL_POINTS))
            found = np.searchsorted(rc, RECALL_POINTS, side="left")
            for r, p in enumerate(found):
                if p < len(pr):
                    q[r] = pr[p]
            ap[c, t] = q.mean()
    defined = ap[:, 0] > -1
    means = [float(x.mean()) if x.size else -1.0 for x in (ap[defined], ap[defined, 0], ap[defined, 5])]
    return {"ap": torch.tensor(ap), "ap_per_class": torch.tensor(np.where(defined, ap.mean(1), -1.0)),
            "map": means[0], "map_50": means[1], "map_75": means[2]}
