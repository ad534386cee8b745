"""Known good: pure numpy, written the way PIL's C resampler works (ImagingResample): for each
output pixel a few input taps and their triangle-filter weights (the support widened by the
scale when shrinking), applied as weighted sums of gathered rows, one axis at a time, in
float32. torch only wraps the finished array."""

import numpy as np
import torch

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _taps(in_size, out_size):
    """Indices [out, k] and weights [out, k] of an antialiased bilinear (triangle) resample."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear filter's support is 1 input pixel, widened when shrinking
    ksize = int(np.ceil(support)) * 2 + 1
    centers = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
    offsets = np.arange(ksize)
    index = xmin[:, None] + offsets[None, :]
    valid = index < xmax[:, None]
    weight = np.maximum(0.0, 1.0 - np.abs((index + 0.5 - centers[:, None]) / filterscale))
    weight = np.where(valid, weight, 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.minimum(index, in_size - 1), weight.astype(np.float32)


def _resample_rows(image, out_size):
    """Resample axis 0 of image [N, ...] to out_size: a weighted sum of gathered rows per tap."""
    index, weights = _taps(image.shape[0], out_size)
    shape = (out_size,) + (1,) * (image.ndim - 1)
    out = np.zeros((out_size, *image.shape[1:]), dtype=np.float32)
    for k in range(index.shape[1]):
        out += image[index[:, k]] * weights[:, k].reshape(shape)
    return out


def _resize(image, new_h, new_w):
    """[H, W, C] float32 -> [new_h, new_w, C]: vertical pass, then the horizontal one on the transpose."""
    vertical = _resample_rows(image, new_h)                                  # [new_h, W, C]
    horizontal = _resample_rows(np.ascontiguousarray(vertical.transpose(1, 0, 2)), new_w)  # [new_w, new_h, C]
    return horizontal.transpose(1, 0, 2)


def _fit(hw, size):
    """Resized (height, width) of an image of size ``hw`` letterboxed into size x size, and its (top, left)."""
    ratio = size / max(hw)
    resized = tuple(max(1, round(side * ratio)) for side in hw)
    return resized, tuple((size - side) // 2 for side in resized)


def preprocess(images, size=224):
    out = np.zeros((len(images), 3, size, size), dtype=np.float32)
    for n, image in enumerate(images):
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        image = image[..., :3].astype(np.float32) / 255.0
        (rows, cols), (top, left) = _fit(image.shape[:2], size)
        normalised = (_resize(image, rows, cols) - MEAN) / STD
        out[n, :, top:top + rows, left:left + cols] = normalised.transpose(2, 0, 1)
    return torch.from_numpy(out)


def letterbox_boxes(boxes, image_hw, size=224):
    (rows, cols), (top, left) = _fit(tuple(image_hw), size)
    coords = boxes.detach().cpu().numpy()
    gain = np.tile([cols / image_hw[1], rows / image_hw[0]], 2)   # x, y, x, y
    shift = np.tile([left, top], 2)
    return torch.from_numpy((coords * gain + shift).astype(coords.dtype))
