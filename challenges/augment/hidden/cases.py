"""Inputs for the hidden checks of `augment`: images, boxes and parameters, made from seeds.

Not a test module: the test files import it by name (the judge puts this folder on sys.path).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from augment_oracle import DECISION_MARGIN, expected_boxes, frame_after_rotation

GRID = 16.0  # box coordinates are multiples of 1/16: flips, rotations and crops of them are exact in float32


def smooth_image(rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    """uint8 [H, W, C]: gradients and waves (periods of 10 pixels and more), like a photograph's large structures."""
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    a, b, c, d = (rng.uniform(-1, 1, (1, 1, channels)) for _ in range(4))
    field = (0.5 + 0.2 * (a * y + b * x)
             + 0.15 * np.sin(2 * np.pi * (c * x * width + d * y * height) / 24 + rng.uniform(0, 6, channels))
             + 0.1 * np.sin(2 * np.pi * (d * x * width - c * y * height) / 10))
    return np.clip(field * 255, 0, 255).astype(np.uint8)


def noise_image(rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def random_boxes(rng: np.random.Generator, count: int, height: int, width: int,
                 zero_area: bool = True) -> np.ndarray:
    """Boxes inside the image, on the 1/16 grid: small and large, some on the border, a few of zero area."""
    size = rng.uniform(0.02, 0.7, (count, 2)) * [width, height]
    if zero_area:
        size[rng.random(count) < 0.05, rng.integers(0, 2)] = 0.0
    corner = rng.uniform(0, 1, (count, 2)) * ([width, height] - size)
    boxes = np.concatenate([corner, corner + size], axis=1)
    on_border = rng.random(count) < 0.1
    boxes[on_border, 0] = 0.0
    boxes[rng.random(count) < 0.1, 3] = height
    boxes = np.floor(boxes * GRID) / GRID
    boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0])
    boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1])
    return boxes


def random_params(rng: np.random.Generator, image_hw: tuple[int, int], *, flip: bool | None = None,
                  rotate: int | None = None, crop: bool = True, resize: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = {
        "flip": bool(rng.integers(0, 2)) if flip is None else flip,
        "rotate": int(rng.integers(0, 4)) if rotate is None else rotate,
    }
    height, width = frame_after_rotation(image_hw, params["rotate"])
    if crop:
        crop_h = int(rng.integers((height + 1) // 2, height + 1))
        crop_w = int(rng.integers((width + 1) // 2, width + 1))
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    else:
        top, left, crop_h, crop_w = 0, 0, height, width
    params["crop"] = (top, left, crop_h, crop_w)
    if resize:
        factor = rng.uniform(0.5, 2.0, 2)
        params["size"] = (max(1, round(crop_h * factor[0])), max(1, round(crop_w * factor[1])))
    else:
        params["size"] = (crop_h, crop_w)
    return params


def random_case(seed: int, *, dtype: torch.dtype = torch.float32, count: int = 40, min_visibility: float = 0.25,
                zero_area: bool = True, **param_options: Any
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(image uint8 [3, H, W], boxes [N, 4], labels int64 [N], params) with no keep/drop decision near a tie."""
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(16, 97, 2))
    image = smooth_image(rng, height, width)
    params = random_params(rng, (height, width), **param_options)
    boxes = random_boxes(rng, count, height, width, zero_area)
    _, _, margins = expected_boxes(boxes, (height, width), params, min_visibility)
    boxes = boxes[margins > DECISION_MARGIN]
    labels = torch.from_numpy(rng.permutation(len(boxes)) + 1).to(torch.int64)  # distinct: alignment shows
    return as_tensor(image), torch.from_numpy(boxes).to(dtype), labels, params
