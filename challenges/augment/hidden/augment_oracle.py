"""What the hidden checks of `augment` compare with, computed here in the judge.

Written from the statement alone, in float64 and one box at a time, so that the
reference solution is checked by the same code as every candidate.

Not a test module: the test files import it by name (the judge puts this folder on sys.path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grader.judgekit import expect_close, expect_tensor

# Resized pixels, in grey levels of a 0..255 image (float images: the same / 255). Bilinear
# resizes of the graded (smooth) images by factors 0.5 to 2 differ from the exact one by at
# most 0.5 on average and 1 at most (rounded or truncated to uint8), antialiased ones (PIL,
# torchvision's default) by 1.1 and 5.1; nearest-neighbour by 10 on average and 36 at worst.
RESIZE_MEAN_ATOL = 1.5
RESIZE_MAX_ATOL = 8.0
BOX_TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-3}, torch.float64: {"rtol": 1e-9, "atol": 1e-7}}
DECISION_MARGIN = 1e-4  # random cases keep every keep/drop decision this far (relative) from a tie


@dataclass
class Expected:
    image: np.ndarray  # float64 [C, H, W], before any rounding
    resized: bool  # whether the image went through a resize (then compared within a tolerance)
    boxes: np.ndarray  # float64 [M, 4]
    keep: np.ndarray  # bool [N]
    margins: np.ndarray  # float64 [N]: how far each decision is from a tie (relative), inf for clear ones


def frame_after_rotation(image_hw: tuple[int, int], rotate: int) -> tuple[int, int]:
    height, width = image_hw
    return (width, height) if rotate % 2 else (height, width)


def expected_boxes(boxes: np.ndarray, image_hw: tuple[int, int], params: dict[str, Any],
                   min_visibility: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept boxes [M, 4], keep [N], margins [N]) in float64, one box at a time."""
    height, width = image_hw
    top, left, crop_h, crop_w = params["crop"]
    out_h, out_w = params["size"]
    kept, keep, margins = [], [], []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        if params["flip"]:
            x1, x2 = width - x2, width - x1
        w = width
        h = height
        for _ in range(params["rotate"] % 4):
            x1, y1, x2, y2 = y1, w - x2, y2, w - x1  # (x, y) -> (y, w - x): counter-clockwise
            h, w = w, h
        area = (x2 - x1) * (y2 - y1)
        cx1, cx2 = (min(max(x - left, 0.0), crop_w) for x in (x1, x2))
        cy1, cy2 = (min(max(y - top, 0.0), crop_h) for y in (y1, y2))
        visible = (cx2 - cx1) * (cy2 - cy1)
        ok = visible > 0 and visible >= min_visibility * area
        keep.append(ok)
        if visible <= 0:
            margin = np.inf  # nothing visible: dropped whatever the arithmetic
        else:
            margin = abs(visible - min_visibility * area) / max(area, 1e-300)
            margin = min(margin, (cx2 - cx1), (cy2 - cy1))  # a sliver of visible area is fragile too
        margins.append(margin)
        if ok:
            kept.append([cx1 * out_w / crop_w, cy1 * out_h / crop_h, cx2 * out_w / crop_w, cy2 * out_h / crop_h])
    return (np.array(kept, dtype=np.float64).reshape(-1, 4), np.array(keep, dtype=bool),
            np.array(margins, dtype=np.float64))


def expected_image(image_chw: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """float64 [C, H, W]: flip, rotate and crop exactly, then an exact bilinear resize (half-pixel centres)."""
    pixels = np.asarray(image_chw, dtype=np.float64)
    if params["flip"]:
        pixels = pixels[:, :, ::-1]
    pixels = np.rot90(pixels, params["rotate"] % 4, axes=(1, 2))
    top, left, crop_h, crop_w = params["crop"]
    pixels = pixels[:, top:top + crop_h, left:left + crop_w]
    out_h, out_w = params["size"]
    if (out_h, out_w) == (crop_h, crop_w):
        return np.ascontiguousarray(pixels), False
    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(pixels))[None], size=(out_h, out_w),
                            mode="bilinear", align_corners=False)[0]
    return resized.numpy(), True


def expected(image: Any, boxes: torch.Tensor, params: dict[str, Any], min_visibility: float) -> Expected:
    chw = image.transpose(2, 0, 1) if isinstance(image, np.ndarray) else image.numpy()
    pixels, resized = expected_image(chw, params)
    kept, keep, margins = expected_boxes(boxes.numpy(), (chw.shape[1], chw.shape[2]), params, min_visibility)
    return Expected(pixels, resized, kept, keep, margins)


def describe(params: dict[str, Any], image: Any) -> str:
    """How a message names a case: which operations, never the values."""
    ops = []
    if params["flip"]:
        ops.append("flip")
    if params["rotate"] % 4:
        ops.append(f"rotate {params['rotate'] % 4}")
    top, left, crop_h, crop_w = params["crop"]
    shape = image.shape[:2] if isinstance(image, np.ndarray) else image.shape[1:]
    height, width = frame_after_rotation(tuple(shape), params["rotate"])
    if (top, left, crop_h, crop_w) != (0, 0, height, width):
        ops.append("crop")
    if tuple(params["size"]) != (crop_h, crop_w):
        ops.append("resize")
    return " + ".join(ops) or "no change"


def check_image(value: Any, image: Any, want: Expected, what: str) -> None:
    as_numpy = isinstance(image, np.ndarray)
    if as_numpy:
        assert type(value) is np.ndarray, f"{what}: a numpy image must come back as a numpy array"
        assert value.dtype == image.dtype, f"{what}: the image's dtype changed ({image.dtype} in, {value.dtype} out)"
        channels, out_h, out_w = want.image.shape
        assert value.shape == (out_h, out_w, channels), (
            f"{what}: expected a numpy image of shape {(out_h, out_w, channels)} (H, W, C), got {value.shape}")
        got = value.transpose(2, 0, 1).astype(np.float64)
    else:
        value = expect_tensor(value, what=f"{what}: the image", shape=want.image.shape, dtype=image.dtype)
        got = value.detach().cpu().to(torch.float64).numpy()
    scale = 255.0 if (image.dtype == np.uint8 or image.dtype == torch.uint8) else 1.0
    assert np.isfinite(got).all(), f"{what}: the image has NaN or infinite values"
    if not want.resized:
        assert np.array_equal(got, want.image), (
            f"{what}: the image's pixels are not where flip, rotation and crop put them "
            "(without a resize they must be exactly the input's pixels)")
        return
    error = np.abs(got - want.image) * (255.0 / scale)
    mean_error, max_error = float(error.mean()), float(error.max())
    assert mean_error <= RESIZE_MEAN_ATOL and max_error <= RESIZE_MAX_ATOL, (
        f"{what}: the resized image differs from a bilinear resize (mean error {mean_error:.3g}, largest "
        f"{max_error:.3g} grey levels; tolerance: mean {RESIZE_MEAN_ATOL:g}, largest {RESIZE_MAX_ATOL:g})")


def check_boxes_and_labels(boxes_value: Any, labels_value: Any, boxes: torch.Tensor, labels: torch.Tensor,
                           want: Expected, what: str) -> None:
    count = int(want.keep.sum())
    boxes_value = expect_tensor(boxes_value, what=f"{what}: the boxes")
    assert boxes_value.dim() == 2 and boxes_value.shape[1] == 4, (
        f"{what}: the boxes must have shape [M, 4], got {tuple(boxes_value.shape)}")
    assert boxes_value.dtype == boxes.dtype, (
        f"{what}: the boxes' dtype changed ({boxes.dtype} in, {boxes_value.dtype} out)")
    assert len(boxes_value) == count, (
        f"{what}: {len(boxes_value)} boxes came back where {count} of {len(boxes)} should be kept "
        "(clipped, with enough visible area)")
    expect_close(boxes_value, torch.from_numpy(want.boxes), what=f"{what}: the kept boxes", check_dtype=False,
                 **BOX_TOL[boxes.dtype])
    labels_value = expect_tensor(labels_value, what=f"{what}: the labels", shape=(count,), dtype=labels.dtype)
    assert torch.equal(labels_value.cpu(), labels[torch.from_numpy(want.keep)]), (
        f"{what}: the labels do not belong to the kept boxes (each kept box keeps its label, in the input order)")


def check_result(value: Any, image: Any, boxes: torch.Tensor, labels: torch.Tensor, params: dict[str, Any],
                 min_visibility: float, what: str) -> None:
    """The whole output of one augment call, against the oracle."""
    what = f"{what} ({describe(params, image)})"
    assert isinstance(value, (tuple, list)) and len(value) == 3, (
        f"{what}: augment must return a tuple (image, boxes, labels)")
    want = expected(image, boxes, params, min_visibility)
    check_image(value[0], image, want, what)
    check_boxes_and_labels(value[1], value[2], boxes, labels, want, what)
