"""Hidden checks for letterbox_boxes: ordinary image sizes, then awkward ones where the per-axis
scale new_w / W, new_h / H differs from size / max(H, W)."""

from __future__ import annotations

import torch
from letterbox_oracle import expected_boxes, geometry

from grader.judgekit import expect_close, expect_tensor

TOL = {"rtol": 1e-5, "atol": 1e-3}


def random_boxes(gen: torch.Generator, n: int, height: int, width: int) -> torch.Tensor:
    """n float64 boxes in an image of height x width, a few reaching outside it."""
    corner = torch.rand(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([width, height]) * 1.1 - 0.05
    extent = torch.rand(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([width, height]) * 0.5
    return torch.cat([corner, corner + extent], dim=1)


def _check_sizes(candidate, cases, seed: int, what: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    for height, width, size in cases:
        new_h, new_w, top, left = geometry(height, width, size)
        image = f"a {height}x{width} image (size {size})"
        # The whole image maps onto the image area of the letterboxed output.
        whole = torch.tensor([[0.0, 0.0, float(width), float(height)]], dtype=torch.float64)
        value = candidate.letterbox_boxes(whole, (height, width), size)
        expect_tensor(value, what=f"letterbox_boxes for {image}", shape=(1, 4), dtype=torch.float64)
        area = torch.tensor([[left, top, left + new_w, top + new_h]], dtype=torch.float64)
        expect_close(value, area, check_dtype=False, **TOL,
                     what=f"{what}: the box (0, 0, W, H) of {image} is not mapped onto the resized image's area")
        for dtype in (torch.float32, torch.float64):
            boxes = random_boxes(gen, 40, height, width).to(dtype)
            value = expect_tensor(candidate.letterbox_boxes(boxes, (height, width), size=size),
                                  what=f"letterbox_boxes of {dtype} boxes for {image}", shape=(40, 4), dtype=dtype)
            expect_close(value, expected_boxes(boxes, (height, width), size), check_dtype=False, **TOL,
                         what=f"{what}: letterbox_boxes of {dtype} boxes for {image}")


def test_boxes_mapping(candidate):
    cases = [(480, 640, 224), (640, 480, 224), (300, 300, 128), (1080, 1920, 320), (600, 800, 100)]
    _check_sizes(candidate, cases, 11, "boxes")
    value = candidate.letterbox_boxes(torch.zeros(0, 4), (480, 640))
    expect_tensor(value, what="letterbox_boxes of no boxes (default size)", shape=(0, 4), dtype=torch.float32)
    value = candidate.letterbox_boxes(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (480, 640))
    expect_close(value, expected_boxes(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (480, 640), 224),
                 check_dtype=False, **TOL, what="boxes: letterbox_boxes with the default size")


def test_boxes_awkward_sizes(candidate):
    cases = [(1, 3, 224), (3, 1, 224), (2, 3, 224), (5, 9, 224), (1, 1000, 224), (100, 1, 224),
             (1001, 7, 224), (333, 517, 224), (57, 31, 97)]
    _check_sizes(candidate, cases, 12, "boxes on awkward image sizes (the scale is new_w / W in x, new_h / H in y)")
