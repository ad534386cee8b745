"""Known bad: treats the upper bound of torch.randint as included: never draws the full size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _rotate_boxes_once(boxes: Tensor, width: float) -> Tensor:
    """One quarter turn counter-clockwise: the point (x, y) goes to (y, width - x)."""
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    return torch.stack([y1, width - x2, y2, width - x1], dim=1)


def augment(image, boxes: Tensor, labels: Tensor, params: dict, min_visibility: float = 0.25):
    """Flip, rotate, crop and resize ``image`` and its ``boxes``; drop the boxes that are no longer visible.

    ``image``: a tensor [C, H, W] or a numpy array [H, W, C]; the result has the same type, dtype and layout.
    Returns (image, boxes, labels) with the kept boxes and their labels, in their original order.
    """
    as_numpy = isinstance(image, np.ndarray)
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) if as_numpy else image
    height, width = pixels.shape[1], pixels.shape[2]
    out = boxes

    if params["flip"]:
        pixels = pixels.flip(2)
        x1, y1, x2, y2 = out.unbind(dim=1)
        out = torch.stack([width - x2, y1, width - x1, y2], dim=1)

    turns = int(params["rotate"]) % 4
    if turns:
        pixels = torch.rot90(pixels, turns, dims=(1, 2))
        for _ in range(turns):
            out = _rotate_boxes_once(out, width)
            height, width = width, height

    top, left, crop_h, crop_w = (int(v) for v in params["crop"])
    pixels = pixels[:, top:top + crop_h, left:left + crop_w]
    area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
    shifted = out - out.new_tensor([left, top, left, top])
    clipped = torch.stack([
        shifted[:, 0].clamp(0, crop_w), shifted[:, 1].clamp(0, crop_h),
        shifted[:, 2].clamp(0, crop_w), shifted[:, 3].clamp(0, crop_h),
    ], dim=1)
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible > 0) & (visible >= min_visibility * area)

    out_h, out_w = (int(v) for v in params["size"])
    if (out_h, out_w) != (crop_h, crop_w):
        resized = F.interpolate(pixels[None].to(torch.float32), size=(out_h, out_w), mode="bilinear",
                                align_corners=False)[0]
        if not pixels.is_floating_point():
            resized = resized.round().clamp(0, 255)
        pixels = resized.to(pixels.dtype)
    scale = clipped.new_tensor([out_w / crop_w, out_h / crop_h, out_w / crop_w, out_h / crop_h])
    kept_boxes = clipped[keep] * scale

    if as_numpy:
        result_image = pixels.permute(1, 2, 0).contiguous().numpy()
    else:
        result_image = pixels.contiguous()
    return result_image, kept_boxes, labels[keep]


def sample_params(generator: torch.Generator, image_hw: tuple[int, int], out_hw: tuple[int, int]) -> dict:
    """Draw one set of parameters for ``augment`` from ``generator`` (and nothing else)."""

    def integer(low: int, high: int) -> int:  # uniform on low..high, both included
        return int(torch.randint(low, max(high, low + 1), (1,), generator=generator))

    flip = bool(integer(0, 1))
    rotate = integer(0, 3)
    height, width = image_hw
    if rotate % 2:
        height, width = width, height
    crop_h = integer((height + 1) // 2, height)
    crop_w = integer((width + 1) // 2, width)
    top = integer(0, height - crop_h)
    left = integer(0, width - crop_w)
    return {"flip": flip, "rotate": rotate, "crop": (top, left, crop_h, crop_w), "size": tuple(out_hw)}
