"""Hidden check: neither function may modify what it is given (the list of images, the arrays, the boxes)."""

from __future__ import annotations

import numpy as np
import torch


def _same_array(after, before: np.ndarray) -> bool:
    return (
        type(after) is np.ndarray
        and after.dtype == before.dtype
        and after.shape == before.shape
        and np.array_equal(after, before)
    )


def test_inputs_unchanged(candidate):
    rng = np.random.default_rng(7)
    images = [
        rng.integers(0, 256, (40, 60, 3), dtype=np.uint8),
        rng.integers(0, 256, (50, 30), dtype=np.uint8),
        rng.integers(0, 256, (35, 35, 4), dtype=np.uint8),
        rng.integers(0, 256, (1, 9, 3), dtype=np.uint8),
    ]
    _, after = candidate.call_with_inputs("preprocess", [image.copy() for image in images], 64)
    assert len(after) == 2, "preprocess: the judge could not read back its inputs"
    assert type(after[0]) is list and len(after[0]) == len(images), (
        "preprocess changed the list of images it was given (its length or its type)"
    )
    kinds = ["an RGB image", "a grayscale image", "an RGBA image", "a 1-pixel-high image"]
    for kind, image, image_after in zip(kinds, images, after[0], strict=True):
        assert _same_array(image_after, image), (
            f"preprocess changed {kind} it was given (its values, shape or dtype, or replaced it in the list)"
        )

    gen = torch.Generator().manual_seed(8)
    for dtype in (torch.float32, torch.float64):
        corner = torch.rand(25, 2, generator=gen, dtype=torch.float64) * 400
        boxes = torch.cat([corner, corner + 50], dim=1).to(dtype)
        _, after = candidate.call_with_inputs("letterbox_boxes", boxes.clone(), (480, 640), 224)
        assert len(after) == 3, "letterbox_boxes: the judge could not read back its inputs"
        assert (
            type(after[0]) is torch.Tensor and after[0].dtype == dtype and torch.equal(after[0].cpu(), boxes)
        ), f"letterbox_boxes changed its input boxes ({dtype})"
