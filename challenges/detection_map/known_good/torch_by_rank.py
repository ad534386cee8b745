"""Known good, fully vectorised in torch: detections padded into a [groups, rank] table per
(class, image), greedy matching run rank by rank for every group and threshold at once, and the
101-point precision read with a running maximum and a gather. float64 throughout.
"""

import torch

THRESHOLDS = torch.linspace(0.5, 0.95, 10, dtype=torch.float64)
RECALLS = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)


def _pairwise_iou(a, b):
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(inter))


def _pad(keys, values, num_groups, fill):
    """Rows grouped by sorted keys -> [num_groups, longest, ...] with a validity mask."""
    counts = torch.bincount(keys, minlength=num_groups)
    width = int(counts.max()) if len(counts) and counts.numel() and int(counts.max()) > 0 else 0
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(keys)) - starts[keys]
    table = torch.full((num_groups, width, *values.shape[1:]), fill, dtype=values.dtype)
    valid = torch.zeros(num_groups, width, dtype=torch.bool)
    table[keys, rank] = values
    valid[keys, rank] = True
    return table, valid, rank


def coco_map(detections, ground_truths, num_images, num_classes):
    db, ds = detections["boxes"].double().reshape(-1, 4), detections["scores"].double()
    dk = detections["labels"].long() * num_images + detections["image_ids"].long()
    gb = ground_truths["boxes"].double().reshape(-1, 4)
    gk = ground_truths["labels"].long() * num_images + ground_truths["image_ids"].long()
    groups = num_classes * num_images
    T = len(THRESHOLDS)

    # detections by (class, image), then score descending, then input order; keep the 100 best per group
    order = torch.arange(len(ds))
    order = order[torch.sort(ds[order], descending=True, stable=True).indices]
    order = order[torch.sort(dk[order], stable=True).indices]
    _, _, rank = _pad(dk[order], ds[order], groups, 0.0)
    order = order[rank < 100]
    det_boxes, det_valid, _ = _pad(dk[order], db[order], groups, 0.0)
    gt_order = torch.sort(gk, stable=True).indices
    gt_boxes, gt_valid, _ = _pad(gk[gt_order], gb[gt_order], groups, 0.0)

    tp = torch.zeros(groups, T, det_boxes.shape[1], dtype=torch.bool)
    if det_boxes.shape[1] and gt_boxes.shape[1]:
        ious = _pairwise_iou(det_boxes, gt_boxes).masked_fill(~gt_valid[:, None, :], -1.0)  # [G, D, M]
        taken = torch.zeros(groups, T, gt_boxes.shape[1], dtype=torch.bool)
        for r in range(det_boxes.shape[1]):
            row = ious[:, r, None, :].expand(-1, T, -1)  # [G, T, M]
            ok = (row >= THRESHOLDS[None, :, None]) & ~taken & det_valid[:, r, None, None]
            masked = torch.where(ok, row, torch.full_like(row, -2.0))
            best = masked.shape[-1] - 1 - masked.flip(-1).argmax(-1)  # the last of the highest
            hit = ok.any(-1)
            tp[:, :, r] = hit
            taken.scatter_(2, best[..., None], hit[..., None] | taken.gather(2, best[..., None]))

    # per detection, in (class, image, rank) order: its tp for every threshold
    det_tp = tp.permute(0, 2, 1)[det_valid]  # [D', T]
    det_class = torch.div(dk[order].sort(stable=True).values, num_images, rounding_mode="floor")
    det_image = dk[order].sort(stable=True).values % num_images
    det_score = det_boxes.new_zeros(0)
    det_score = torch.cat([ds[order][torch.sort(dk[order], stable=True).indices]]) if len(order) else det_score
    npig = torch.bincount(ground_truths["labels"].long(), minlength=num_classes).double()

    ap = -torch.ones(num_classes, T, dtype=torch.float64)
    for c in range(num_classes):
        if npig[c] == 0:
            continue
        mine = det_class == c
        if not bool(mine.any()):
            ap[c] = 0.0
            continue
        scores, images, hits = det_score[mine], det_image[mine], det_tp[mine]
        # COCO order: score descending; equal scores by image, then by rank (the order they are in now)
        idx = torch.sort(scores, descending=True, stable=True).indices
        hits = hits[idx].double()
        tps, fps = hits.cumsum(0), (1 - hits).cumsum(0)
        recall = tps / npig[c]
        precision = tps / (tps + fps + 2.220446049250313e-16)
        envelope = precision.flip(0).cummax(0).values.flip(0)  # [n, T]
        for t in range(T):
            at = torch.searchsorted(recall[:, t].contiguous(), RECALLS, side="left")
            inside = at < len(envelope)
            ap[c, t] = torch.where(inside, envelope[at.clamp(max=len(envelope) - 1), t], 0.0).mean()
        del images
    defined = npig > 0
    pick = ap[defined]
    means = [float(x.mean()) if x.numel() else -1.0 for x in (pick, pick[:, 0], pick[:, 5])]
    return {"ap": ap, "ap_per_class": torch.where(defined, ap.mean(1), torch.tensor(-1.0, dtype=torch.float64)),
            "map": means[0], "map_50": means[1], "map_75": means[2]}
