"""Known bad: maps the caller's boxes in place."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def letterbox_geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(new_height, new_width, top, left) of an image of height x width letterboxed into size x size."""
    scale = size / max(height, width)
    new_h = max(1, round(height * scale))
    new_w = max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An HxWx3 view or copy of an HxW, HxWx3 or HxWx4 uint8 image (never the caller's array modified)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")


def _resize(chw: Tensor, new_h: int, new_w: int) -> Tensor:
    """Antialiased bilinear resize of a float [3, H, W] tensor to [3, new_h, new_w]."""
    if new_w == 1 and new_h > 1:
        # torch's float antialiased kernel is wrong when the output width is 1 (an output
        # height of 1 is fine): resize the transposed image instead.
        out = F.interpolate(chw.transpose(1, 2)[None], size=(new_w, new_h), mode="bilinear",
                            antialias=True, align_corners=False)
        return out[0].transpose(1, 2)
    out = F.interpolate(chw[None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    return out[0]


def preprocess(images: list[np.ndarray], size: int = 224) -> Tensor:
    """Letterbox each image into size x size, scale to [0, 1] and normalise with ImageNet's mean and std.

    Returns a float32 tensor [B, 3, size, size]; the padding is 0 after normalisation.
    """
    out = torch.zeros(len(images), 3, size, size, dtype=torch.float32)
    for index, image in enumerate(images):
        rgb = _as_rgb(np.asarray(image))
        height, width = rgb.shape[:2]
        new_h, new_w, top, left = letterbox_geometry(height, width, size)
        chw = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        resized = _resize(chw, new_h, new_w)
        out[index, :, top:top + new_h, left:left + new_w] = (resized - MEAN) / STD
    return out


def letterbox_boxes(boxes: Tensor, image_hw: tuple[int, int], size: int = 224) -> Tensor:
    """Map (x1, y1, x2, y2) boxes from the original image to the letterboxed one.

    x' = x * new_w / W + left and y' = y * new_h / H + top, in the boxes' dtype; no clipping.
    """
    height, width = int(image_hw[0]), int(image_hw[1])
    new_h, new_w, top, left = letterbox_geometry(height, width, size)
    scale = torch.tensor([new_w / width, new_h / height] * 2, dtype=boxes.dtype, device=boxes.device)
    offset = torch.tensor([left, top] * 2, dtype=boxes.dtype, device=boxes.device)
    boxes *= scale
    boxes += offset
    return boxes
