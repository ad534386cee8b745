"""Hidden checks for augment's geometry: output format, flip, rotation, crop with clipping and dropping,
resize, random compositions and invariants.

Expected values come from augment_oracle (float64, one box at a time), written from the statement.
"""

from __future__ import annotations

import numpy as np
import torch
from augment_oracle import BOX_TOL, check_result
from cases import as_tensor, noise_image, random_case, random_params, smooth_image

from grader.judgekit import expect_close, expect_tensor

# A 10 x 16 (H x W) image and boxes that touch its borders: every operation must keep them exact.
BORDER_BOXES = [[0, 0, 16, 10], [0, 0, 4, 3], [12, 7, 16, 10], [0, 2.5, 5.25, 10], [3.5, 0, 16, 4.75]]


def _noise_case(seed: int, height: int, width: int, boxes: list[list[float]], dtype: torch.dtype = torch.float32):
    image = as_tensor(noise_image(np.random.default_rng(seed), height, width))
    labels = torch.arange(10, 10 + len(boxes), dtype=torch.int64)
    return image, torch.tensor(boxes, dtype=dtype).reshape(-1, 4), labels


def _full(height: int, width: int, **params):
    rotate = params.get("rotate", 0)
    h, w = (width, height) if rotate % 2 else (height, width)
    return {"flip": False, "rotate": 0, "crop": (0, 0, h, w), "size": (h, w), **params}


def _format(value, image, boxes: torch.Tensor, labels: torch.Tensor, params, what: str) -> None:
    """Types, dtypes, layout and shapes only: the values are the other checks' business."""
    assert isinstance(value, (tuple, list)) and len(value) == 3, (
        f"{what}: augment must return a tuple (image, boxes, labels)")
    out_h, out_w = params["size"]
    channels = image.shape[0]
    expect_tensor(value[0], what=f"{what}: the image", shape=(channels, out_h, out_w), dtype=image.dtype)
    got = expect_tensor(value[1], what=f"{what}: the boxes", dtype=boxes.dtype)
    assert got.dim() == 2 and got.shape[1] == 4, f"{what}: the boxes must have shape [M, 4]"
    assert len(got) <= len(boxes), f"{what}: more boxes came back than went in"
    expect_tensor(value[2], what=f"{what}: the labels", shape=(len(got),), dtype=labels.dtype)


def test_output_format(candidate):
    for seed, dtype in ((1, torch.float32), (2, torch.float64)):
        image, boxes, labels, params = random_case(seed, dtype=dtype)
        _format(candidate.augment(image, boxes, labels, params), image, boxes, labels, params,
                f"augment of a uint8 image with {dtype} boxes")
    # float images keep their dtype; labels of another integer dtype keep theirs
    image, boxes, labels, params = random_case(3)
    image = image.to(torch.float32) / 255
    labels = labels.to(torch.int32)
    _format(candidate.augment(image, boxes, labels, params), image, boxes, labels, params,
            "augment of a float32 image with int32 labels")
    # the default min_visibility and the keyword form give the same result
    image, boxes, labels, params = random_case(4)
    default = candidate.augment(image, boxes, labels, params)
    keyword = candidate.augment(image, boxes, labels, params, min_visibility=0.25)
    _format(default, image, boxes, labels, params, "augment with the default min_visibility")
    assert len(default[1]) == len(keyword[1]), "min_visibility must default to 0.25"


def test_flip(candidate):
    image, boxes, labels = _noise_case(10, 10, 16, BORDER_BOXES)
    for dtype in (torch.float32, torch.float64):
        params = _full(10, 16, flip=True)
        b = boxes.to(dtype)
        check_result(candidate.augment(image, b, labels, params), image, b, labels, params, 0.25,
                     f"horizontal flip of boxes on the border ({dtype})")
    for seed in (11, 12, 13):
        image, boxes, labels, params = random_case(seed, flip=True, rotate=0, crop=False, resize=False,
                                                   zero_area=False)
        check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                     "horizontal flip of random boxes")


def test_rotate(candidate):
    image, boxes, labels = _noise_case(20, 10, 16, BORDER_BOXES)
    for turns in (1, 2, 3):
        for flip in (False, True):
            params = _full(10, 16, rotate=turns, flip=flip)
            check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                         "rotation of boxes on the border")
    for seed in (21, 22, 23):
        image, boxes, labels, params = random_case(seed, rotate=1 + seed % 3, crop=False, resize=False,
                                                   zero_area=False)
        check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                     "rotation of random boxes")


# name, box on a 20 x 20 image, cropped to the window (top 5, left 5, height 10, width 10), min_visibility
CROP_CASES = [
    ("a box inside the window", [6, 7, 9, 12], 0.25),
    ("a box equal to the window", [5, 5, 15, 15], 0.25),
    ("a box larger than the window", [0, 0, 20, 20], 0.25),
    ("a box entirely left of the window", [0, 6, 4, 9], 0.0),
    ("a box entirely below the window", [6, 16, 9, 20], 0.0),
    ("a box touching the window's left edge from outside", [2, 6, 5, 9], 0.0),
    ("a box touching the window's corner from outside", [15, 15, 18, 18], 0.0),
    ("a box half inside, at min_visibility 0.5 (kept: exactly the fraction)", [1, 6, 9, 8], 0.5),
    ("a box a quarter inside, at min_visibility 0.25 (kept: exactly the fraction)", [2, 13, 6, 17], 0.25),
    ("a box a quarter inside, at min_visibility 0.3 (dropped)", [2, 13, 6, 17], 0.3),
    ("a box 1% inside, at min_visibility 0 (kept)", [14.9375, 0, 24.9375, 6], 0.0),
    ("a zero-width box inside the window", [8, 6, 8, 12], 0.0),
    ("a zero-height box inside the window", [6, 9, 13, 9], 0.25),
    ("a point box inside the window", [7, 7, 7, 7], 0.0),
    ("a box crossing the whole window, 25% visible", [0, 9, 20, 14], 0.25),
]


def test_crop_clip_drop(candidate):
    image = as_tensor(noise_image(np.random.default_rng(30), 20, 20))
    params = {"flip": False, "rotate": 0, "crop": (5, 5, 10, 10), "size": (10, 10)}
    for dtype in (torch.float32, torch.float64):
        for name, box, min_visibility in CROP_CASES:
            boxes = torch.tensor([box], dtype=dtype)
            labels = torch.tensor([7], dtype=torch.int64)
            check_result(candidate.augment(image, boxes, labels, params, min_visibility), image, boxes, labels,
                         params, min_visibility, f"crop of {name}, {dtype}")
        # all of them at once, in one call, at the default min_visibility (0.25)
        boxes = torch.tensor([case[1] for case in CROP_CASES], dtype=dtype)
        labels = torch.arange(len(CROP_CASES), dtype=torch.int64)
        check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                     f"crop of many edge-case boxes at once, {dtype}")
    for seed in (31, 32, 33, 34):
        min_visibility = (0.0, 0.25, 0.5, 0.9)[seed % 4]
        image, boxes, labels, params = random_case(seed, rotate=0, flip=False, resize=False,
                                                   min_visibility=min_visibility)
        check_result(candidate.augment(image, boxes, labels, params, min_visibility=min_visibility), image, boxes,
                     labels, params, min_visibility, f"crop of random boxes, min_visibility {min_visibility}")


def test_resize(candidate):
    rng = np.random.default_rng(40)
    for index, (height, width, out_h, out_w) in enumerate([(40, 60, 80, 120), (64, 48, 32, 24), (30, 50, 45, 33),
                                                           (25, 25, 50, 13), (37, 61, 37, 61)]):
        image = as_tensor(smooth_image(rng, height, width))
        boxes = torch.tensor([[0, 0, width, height], [1.5, 2.25, 20.75, 17], [10, 5, 10.5, 24]], dtype=torch.float32)
        labels = torch.tensor([3, 1, 2])
        params = {"flip": False, "rotate": 0, "crop": (0, 0, height, width), "size": (out_h, out_w)}
        check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                     f"resize of a {height}x{width} image to {out_h}x{out_w}")
        if index == 0:
            as_float = image.to(torch.float32) / 255
            check_result(candidate.augment(as_float, boxes, labels, params), as_float, boxes, labels, params, 0.25,
                         f"resize of a {height}x{width} float32 image to {out_h}x{out_w}")
    for seed in (41, 42):
        image, boxes, labels, params = random_case(seed, rotate=0, flip=False, crop=False, zero_area=False)
        check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                     "resize of random boxes")


def test_random_compositions(candidate):
    for seed in range(100, 112):
        dtype = torch.float64 if seed % 3 == 0 else torch.float32
        min_visibility = (0.25, 0.0, 0.6)[seed % 3]
        image, boxes, labels, params = random_case(seed, dtype=dtype, count=60, min_visibility=min_visibility)
        value = candidate.augment(image, boxes, labels, params, min_visibility=min_visibility)
        check_result(value, image, boxes, labels, params, min_visibility, "random flip, rotation, crop and resize")


def _step(candidate, image, boxes, labels, **params):
    value = candidate.augment(image, boxes, labels, _full(image.shape[1], image.shape[2], **params), 0.0)
    assert isinstance(value, (tuple, list)) and len(value) == 3, "augment must return a tuple (image, boxes, labels)"
    return value


def _same(value, image, boxes, labels, what: str) -> None:
    got_image = expect_tensor(value[0], what=f"{what}: the image", shape=tuple(image.shape), dtype=image.dtype)
    assert torch.equal(got_image, image), f"{what}: the image is not the original"
    expect_close(value[1], boxes, what=f"{what}: the boxes", **BOX_TOL[boxes.dtype])
    assert torch.equal(expect_tensor(value[2], what=f"{what}: the labels"), labels), f"{what}: the labels changed"


def test_invariants(candidate):
    image, boxes, labels, _ = random_case(50, count=30, min_visibility=0.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # zero-area boxes are always dropped
    boxes, labels = boxes[keep], labels[keep]
    once = _step(candidate, image, boxes, labels, flip=True)
    _same(_step(candidate, *once, flip=True), image, boxes, labels, "flipping twice")
    value = (image, boxes, labels)
    for _ in range(4):
        value = _step(candidate, *value, rotate=1)
    _same(value, image, boxes, labels, "rotating by a quarter turn four times")
    _same(_step(candidate, *_step(candidate, image, boxes, labels, rotate=1), rotate=3), image, boxes, labels,
          "rotating by one quarter turn, then by three")
    _same(_step(candidate, *_step(candidate, image, boxes, labels, rotate=2, flip=True), rotate=2, flip=True),
          image, boxes, labels, "flip with a half turn, twice")
    # two crops in a row are the crop of the combined window (at min_visibility 0)
    height, width = image.shape[1:]
    first = {"flip": False, "rotate": 0, "crop": (3, 4, height - 5, width - 6), "size": (height - 5, width - 6)}
    second = {"flip": False, "rotate": 0, "crop": (2, 1, height - 9, width - 8), "size": (height - 9, width - 8)}
    both = {"flip": False, "rotate": 0, "crop": (5, 5, height - 9, width - 8), "size": (height - 9, width - 8)}
    once = candidate.augment(image, boxes, labels, first, 0.0)
    twice = candidate.augment(*once, second, 0.0)
    check_result(twice, image, boxes, labels, both, 0.0, "two crops in a row")


def test_numpy_images(candidate):
    rng = np.random.default_rng(60)
    for channels in (3, 1, 4):
        array = smooth_image(rng, 48, 64, channels)
        boxes = torch.tensor([[0, 0, 64, 48], [5.5, 6, 30, 40.25], [50, 1, 63, 9]], dtype=torch.float32)
        labels = torch.tensor([1, 2, 3])
        for params in (random_params(rng, (48, 64), resize=False), random_params(rng, (48, 64))):
            value = candidate.augment(array.copy(), boxes, labels, params)
            check_result(value, array, boxes, labels, params, 0.25, f"augment of a numpy HxWx{channels} image")


def test_labels_and_empty(candidate):
    # labels follow their boxes through dropping, with repeated values and another dtype
    image = as_tensor(smooth_image(np.random.default_rng(70), 20, 20))
    params = {"flip": True, "rotate": 1, "crop": (5, 5, 10, 10), "size": (20, 5)}
    boxes = torch.tensor([case[1] for case in CROP_CASES], dtype=torch.float32)
    for labels in (torch.tensor([4, 4, 1, 0, 9, 4, 2, 2, 7, 3, 5, 5, 6, 8, 1]),
                   torch.arange(len(CROP_CASES), dtype=torch.int32) * 3):
        check_result(candidate.augment(image, boxes, labels, params), image, boxes, labels, params, 0.25,
                     f"labels ({labels.dtype}) of boxes some of which are dropped")
    for seed in (71, 72):
        image, boxes, labels, params = random_case(seed, count=80, min_visibility=0.5)
        check_result(candidate.augment(image, boxes, labels, params, 0.5), image, boxes, labels, params, 0.5,
                     "labels of many random boxes")
    # no boxes at all, and every box dropped
    for dtype in (torch.float32, torch.float64):
        image, _, _, params = random_case(73)
        none = torch.zeros(0, 4, dtype=dtype)
        check_result(candidate.augment(image, none, torch.zeros(0, dtype=torch.int64), params), image, none,
                     torch.zeros(0, dtype=torch.int64), params, 0.25, f"augment of an image without boxes ({dtype})")
        outside = torch.tensor([[0, 0, 2, 2], [0, 18, 3, 20]], dtype=dtype)
        params = {"flip": False, "rotate": 0, "crop": (5, 5, 10, 10), "size": (10, 10)}
        image = as_tensor(noise_image(np.random.default_rng(74), 20, 20))
        check_result(candidate.augment(image, outside, torch.tensor([1, 2]), params), image, outside,
                     torch.tensor([1, 2]), params, 0.25, f"a crop that drops every box ({dtype})")
