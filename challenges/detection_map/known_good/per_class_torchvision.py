"""Known good, class-major with torchvision: for each class, for each image that has its detections,
torchvision.ops.box_iou and a greedy match per threshold in plain Python; AP as the mean over the 101 recall points
of the largest precision reached at any recall at least that high (a masked max, no searchsorted).
"""

import torch
from torchvision.ops import box_iou

THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]
THRESHOLDS[5] = 0.75  # exact; the others never meet an IoU closely enough to matter (statement)
RECALL_POINTS = torch.arange(101, dtype=torch.float64) / 100


def _match(ious, threshold):
    """ious: rows of Python floats for score-ordered detections; which detections find a free ground truth."""
    free = [True] * (len(ious[0]) if ious else 0)
    hits = []
    for row in ious:
        best, chosen = threshold, -1
        for g, iou in enumerate(row):
            if free[g] and iou >= best:  # >=: of equal IoUs COCO keeps the last
                best, chosen = iou, g
        if chosen >= 0:
            free[chosen] = False
        hits.append(chosen >= 0)
    return hits


def _ap(hits, num_truths):
    tp = torch.cumsum(hits.double(), 0)
    fp = torch.cumsum((~hits).double(), 0)
    recall, precision = tp / num_truths, tp / (tp + fp)
    reached = recall[None, :] >= RECALL_POINTS[:, None]  # [101, D]
    best = torch.where(reached, precision[None, :], torch.zeros(1, dtype=torch.float64)).max(dim=1).values \
        if len(recall) else torch.zeros(101, dtype=torch.float64)
    return float(best.mean())


def coco_map(detections, ground_truths, num_images, num_classes):
    boxes, scores = detections["boxes"].double(), detections["scores"].double()
    labels, images = detections["labels"], detections["image_ids"]
    g_boxes, g_labels, g_images = ground_truths["boxes"].double(), ground_truths["labels"], ground_truths["image_ids"]
    ap = torch.full((num_classes, 10), -1.0, dtype=torch.float64)
    for c in range(num_classes):
        truths = torch.nonzero(g_labels == c).flatten()
        if len(truths) == 0:
            continue
        mine = torch.nonzero(labels == c).flatten()
        # this class's detections by image, then score descending, then input order
        mine = mine[torch.sort(scores[mine], descending=True, stable=True).indices]
        mine = mine[torch.sort(images[mine], stable=True).indices]
        truths = truths[torch.sort(g_images[truths], stable=True).indices]
        det_images, det_counts = torch.unique_consecutive(images[mine], return_counts=True)
        gt_images, gt_counts = torch.unique_consecutive(g_images[truths], return_counts=True)
        gts_of = dict(zip(gt_images.tolist(), torch.split(truths, gt_counts.tolist()), strict=True))
        per_threshold = [[] for _ in THRESHOLDS]
        kept_scores, kept_images, kept_ranks = [], [], []
        for image, dets in zip(det_images.tolist(), torch.split(mine, det_counts.tolist()), strict=True):
            dets = dets[:100]
            gts = gts_of.get(image)
            rows = box_iou(boxes[dets], g_boxes[gts]).tolist() if gts is not None else [[] for _ in range(len(dets))]
            for t, threshold in enumerate(THRESHOLDS):
                per_threshold[t] += _match(rows, threshold)
            kept_scores.append(scores[dets])
            kept_images += [image] * len(dets)
            kept_ranks += range(len(dets))
        if not kept_scores:
            ap[c] = 0.0
            continue
        s, im, rk = torch.cat(kept_scores), torch.tensor(kept_images), torch.tensor(kept_ranks)
        # score descending; ties: image id, then rank within the image (= input order among equals)
        order = torch.sort(rk, stable=True).indices
        order = order[torch.sort(im[order], stable=True).indices]
        order = order[torch.sort(s[order], descending=True, stable=True).indices]
        for t in range(len(THRESHOLDS)):
            ap[c, t] = _ap(torch.tensor(per_threshold[t], dtype=torch.bool)[order], len(truths))
    defined = ap[:, 0] > -1
    chosen = ap[defined]
    means = [float(x.mean()) if x.numel() else -1.0 for x in (chosen, chosen[:, 0], chosen[:, 5])]
    return {"ap": ap, "ap_per_class": torch.where(defined, ap.mean(1), torch.tensor(-1.0, dtype=torch.float64)),
            "map": means[0], "map_50": means[1], "map_75": means[2]}
