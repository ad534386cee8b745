"""Known good, numpy-first style: everything as numpy H x W x C, PIL's bilinear resize (antialiased when
shrinking), boxes as numpy columns, and a sampler built on torch.rand scaled to integer ranges.

Differs from the reference in the resize (PIL rounds to uint8 and antialiases), in the order of the
arithmetic on boxes, and in how random integers are drawn.
"""

import math

import numpy as np
import torch
from PIL import Image


def _resize(pixels: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """pixels [H, W, C] uint8 or float32 -> [out_h, out_w, C], channel by channel through PIL."""
    channels = []
    for c in range(pixels.shape[2]):
        plane = pixels[:, :, c]
        mode_image = Image.fromarray(plane.astype(np.float32), mode="F")
        resized = np.asarray(mode_image.resize((out_w, out_h), Image.BILINEAR), dtype=np.float32)
        channels.append(resized)
    stacked = np.stack(channels, axis=2)
    if pixels.dtype == np.uint8:
        return np.clip(np.rint(stacked), 0, 255).astype(np.uint8)
    return stacked.astype(pixels.dtype)


def augment(image, boxes, labels, params, min_visibility=0.25):
    is_tensor = isinstance(image, torch.Tensor)
    pixels = image.permute(1, 2, 0).numpy() if is_tensor else np.asarray(image)
    b = boxes.numpy().astype(np.float64).copy()
    h, w = pixels.shape[:2]

    if params["flip"]:
        pixels = pixels[:, ::-1]
        b[:, [0, 2]] = w - b[:, [2, 0]]
    for _ in range(params["rotate"] % 4):
        pixels = np.rot90(pixels, 1, axes=(0, 1))
        b = np.stack([b[:, 1], w - b[:, 2], b[:, 3], w - b[:, 0]], axis=1)
        h, w = w, h

    top, left, ch, cw = params["crop"]
    pixels = pixels[top:top + ch, left:left + cw]
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b[:, [0, 2]] = np.clip(b[:, [0, 2]] - left, 0, cw)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]] - top, 0, ch)
    visible = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = (visible > 0) & (visible >= min_visibility * areas)

    oh, ow = params["size"]
    if (oh, ow) != (ch, cw):
        pixels = _resize(np.ascontiguousarray(pixels), oh, ow)
    b = b[keep]
    b[:, [0, 2]] *= ow / cw
    b[:, [1, 3]] *= oh / ch

    pixels = np.ascontiguousarray(pixels)
    out_image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous() if is_tensor else pixels
    return out_image, torch.from_numpy(b).to(boxes.dtype), labels[torch.from_numpy(keep)]


def _uniform_int(generator, low, high):
    """low..high inclusive, from one uniform float."""
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return min(low + math.floor(u * (high - low + 1)), high)


def sample_params(generator, image_hw, out_hw):
    flip = float(torch.rand((), generator=generator, dtype=torch.float64)) < 0.5
    rotate = _uniform_int(generator, 0, 3)
    h, w = image_hw if rotate % 2 == 0 else image_hw[::-1]
    ch = _uniform_int(generator, math.ceil(h / 2), h)
    cw = _uniform_int(generator, math.ceil(w / 2), w)
    return {"flip": flip, "rotate": rotate,
            "crop": [_uniform_int(generator, 0, h - ch), _uniform_int(generator, 0, w - cw), ch, cw],
            "size": list(out_hw)}
