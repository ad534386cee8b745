"""Known good, affine-matrix style: flip, quarter turns, crop and scale composed into one 3x3 matrix
applied to the boxes' corners (min and max of the moved corners); visibility measured after the
resize (scaling every area by the same factor keeps the fraction); torchvision's v2 resize
(antialiased) for the image; a sampler that draws all its numbers from one torch.randint call per range.
"""

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF


def _matrix(params, height, width):
    m = torch.eye(3, dtype=torch.float64)
    if params["flip"]:
        m = torch.tensor([[-1.0, 0, width], [0, 1, 0], [0, 0, 1]], dtype=torch.float64) @ m
    for _ in range(params["rotate"] % 4):
        m = torch.tensor([[0.0, 1, 0], [-1, 0, width], [0, 0, 1]], dtype=torch.float64) @ m
        height, width = width, height
    top, left, ch, cw = params["crop"]
    m = torch.tensor([[1.0, 0, -left], [0, 1, -top], [0, 0, 1]], dtype=torch.float64) @ m
    oh, ow = params["size"]
    return torch.tensor([[ow / cw, 0, 0], [0, oh / ch, 0], [0, 0, 1]], dtype=torch.float64) @ m


def augment(image, boxes, labels, params, min_visibility=0.25):
    numpy_in = isinstance(image, np.ndarray)
    t = torch.from_numpy(image.copy()).permute(2, 0, 1) if numpy_in else image
    _, height, width = t.shape
    if params["flip"]:
        t = TF.horizontal_flip(t)
    t = torch.rot90(t, params["rotate"] % 4, dims=(-2, -1))
    top, left, ch, cw = params["crop"]
    t = t[:, top:top + ch, left:left + cw]
    oh, ow = params["size"]
    if (oh, ow) != (ch, cw):
        t = TF.resize(t, [oh, ow], antialias=True)

    m = _matrix(params, height, width)
    b = boxes.to(torch.float64)
    corners = torch.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], dim=1)  # [N, 4, 2]
    moved = corners @ m[:2, :2].T + m[:2, 2]
    lo, hi = moved.min(dim=1).values, moved.max(dim=1).values
    area = (hi - lo).prod(dim=1)
    bounds = torch.tensor([ow, oh], dtype=torch.float64)
    lo_c, hi_c = lo.clamp(min=0).minimum(bounds), hi.clamp(min=0).minimum(bounds)
    visible = (hi_c - lo_c).prod(dim=1)
    keep = (visible > 0) & (visible >= min_visibility * area)
    out = torch.cat([lo_c, hi_c], dim=1)[keep].to(boxes.dtype)

    result = t.permute(1, 2, 0).numpy().copy() if numpy_in else t.contiguous()
    return result, out, labels[keep]


def sample_params(generator, image_hw, out_hw):
    bits = torch.randint(0, 2, (1,), generator=generator)
    rotate = int(torch.randint(0, 4, (1,), generator=generator))
    h, w = (image_hw[1], image_hw[0]) if rotate % 2 else (image_hw[0], image_hw[1])
    ch = int(torch.randint(-(-h // 2), h + 1, (1,), generator=generator))
    cw = int(torch.randint(-(-w // 2), w + 1, (1,), generator=generator))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    return {"flip": bool(bits.item()), "rotate": rotate, "crop": (top, left, ch, cw), "size": tuple(out_hw)}
