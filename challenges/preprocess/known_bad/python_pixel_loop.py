"""Known bad: right values, but each output pixel is computed in a Python loop (far too slow)."""

import math

import numpy as np
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _geometry(height, width, size):
    scale = size / max(height, width)
    new_h = max(1, round(height * scale))
    new_w = max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def _taps(n_in, n_out):
    """For each output index: (first input index, normalised triangle weights)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    taps = []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        weights = [max(0.0, 1.0 - abs((j + 0.5 - centre) / support)) for j in range(lo, hi)]
        total = math.fsum(weights)
        taps.append((lo, np.array([w / total for w in weights])))
    return taps


def preprocess(images, size=224):
    out = torch.zeros(len(images), 3, size, size)
    for index, image in enumerate(images):
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=2)
        rgb = image[:, :, :3].astype(np.float64) / 255.0
        height, width = rgb.shape[:2]
        new_h, new_w, top, left = _geometry(height, width, size)
        rows, cols = _taps(height, new_h), _taps(width, new_w)
        result = np.zeros((new_h, new_w, 3))
        for y in range(new_h):
            y0, wy = rows[y]
            for x in range(new_w):
                x0, wx = cols[x]
                patch = rgb[y0:y0 + len(wy), x0:x0 + len(wx)]
                result[y, x] = np.einsum("i,j,ijc->c", wy, wx, patch)
        normalised = (result - np.array(MEAN)) / np.array(STD)
        out[index, :, top:top + new_h, left:left + new_w] = torch.from_numpy(normalised).permute(2, 0, 1)
    return out


def letterbox_boxes(boxes, image_hw, size=224):
    height, width = image_hw
    new_h, new_w, top, left = _geometry(height, width, size)
    scale = torch.tensor([new_w / width, new_h / height] * 2, dtype=boxes.dtype)
    offset = torch.tensor([left, top] * 2, dtype=boxes.dtype)
    return boxes * scale + offset
