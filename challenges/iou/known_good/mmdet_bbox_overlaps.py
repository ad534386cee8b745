"""Known good: mmdetection style. `bbox_overlaps` as in mmdet.structures.bbox (mode "iou",
not aligned): left-top and right-bottom corners by broadcasting, the union clamped at
`eps = 1e-6` with `torch.max(union, eps)`, float16 upcast to float32 for the clamp as
mmdet's `fp16_clamp` does. NMS as in Fast R-CNN's `py_cpu_nms`, ported to torch: sort by
score, keep the first, drop every remaining box whose overlap with it exceeds the threshold."""

import torch


def fp16_clamp(x, min=None, max=None):
    if not x.is_cuda and x.dtype == torch.float16:
        # clamp for cpu float16, tensor fp16 has no clamp implementation in older torch
        return x.float().clamp(min, max).half()
    return x.clamp(min, max)


def bbox_overlaps(bboxes1, bboxes2, mode="iou", is_aligned=False, eps=1e-6):
    assert mode == "iou", f"Unsupported mode {mode} (only iou is needed here)"
    assert bboxes1.size(-1) == 4 or bboxes1.size(0) == 0
    assert bboxes2.size(-1) == 4 or bboxes2.size(0) == 0
    assert not is_aligned, "only the pairwise form is needed here"

    rows, cols = bboxes1.size(-2), bboxes2.size(-2)
    if rows * cols == 0:
        return bboxes1.new_zeros((*bboxes1.shape[:-2], rows, cols))

    area1 = (bboxes1[..., 2] - bboxes1[..., 0]) * (bboxes1[..., 3] - bboxes1[..., 1])
    area2 = (bboxes2[..., 2] - bboxes2[..., 0]) * (bboxes2[..., 3] - bboxes2[..., 1])

    lt = torch.max(bboxes1[..., :, None, :2], bboxes2[..., None, :, :2])  # [B, rows, cols, 2]
    rb = torch.min(bboxes1[..., :, None, 2:], bboxes2[..., None, :, 2:])  # [B, rows, cols, 2]

    wh = fp16_clamp(rb - lt, min=0)
    overlap = wh[..., 0] * wh[..., 1]

    union = area1[..., None] + area2[..., None, :] - overlap
    eps = union.new_tensor([eps])
    union = torch.max(union, eps)
    return overlap / union


def box_iou(boxes1, boxes2):
    return bbox_overlaps(boxes1, boxes2)


def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(int(i))
        if order.numel() == 1:
            break
        ovr = bbox_overlaps(boxes[i][None], boxes[order[1:]])[0]
        inds = torch.where(ovr <= iou_threshold)[0]
        order = order[inds + 1]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)
