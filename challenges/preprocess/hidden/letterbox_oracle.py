"""What the hidden checks of `preprocess` compare with, computed here in the judge.

The expected output is computed in float64 with numpy from the statement alone
(separable triangle filter, widened when downscaling: antialiased bilinear), so
the reference solution is checked by the same code as every candidate.

Not a test module: the test files import it by name (the judge puts this folder on sys.path).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from grader.judgekit import expect_tensor

DATA = Path(__file__).parent / "data"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])

# Tolerances, in normalised units (a difference of 1/255 in a pixel is 0.017 to 0.018 there),
# over the image area of each output image; the padding must be 0 (to PAD_ATOL).
# PIL's bilinear resize and torch's uint8 resize round to whole pixel values: mean error
# about 0.005, largest about 0.017. A resize without antialiasing, bicubic, box or nearest
# resampling are off by 0.1 to 3 somewhere on photographs and generated images.
MEAN_ATOL = 0.02
MAX_ATOL = 0.1
PAD_ATOL = 1e-6


def geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(new_height, new_width, top, left) as the statement defines them.

    The graded sizes never put height * scale or width * scale on an exact .5,
    so how halves are rounded does not matter.
    """
    scale = size / max(height, width)
    for side in (height, width):
        assert abs(side * size / max(height, width) % 1 - 0.5) > 1e-6, (
            "a graded image size rounds a half (a bug in this check, not in your solution)"
        )
    new_h = max(1, round(height * scale))
    new_w = max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


@functools.lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of an antialiased linear resize (pixel centres at i + 0.5)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        taps = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - centre) / support))
        weights[i, lo:hi] = w / w.sum()
    return weights


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 from HxW (replicated), HxWx3, or HxWx4 (alpha dropped)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def expected_image(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The exact float64 [3, size, size] output for one image, and its geometry."""
    rgb = as_rgb(image).astype(np.float64) / 255.0
    height, width = rgb.shape[:2]
    new_h, new_w, top, left = geometry(height, width, size)
    rows = _weights(height, new_h) @ rgb.reshape(height, -1)            # [new_h, W * 3]
    resized = np.matmul(_weights(width, new_w), rows.reshape(new_h, width, 3))  # [new_h, new_w, 3]
    out = np.zeros((3, size, size))
    out[:, top:top + new_h, left:left + new_w] = ((resized - MEAN) / STD).transpose(2, 0, 1)
    return out, (new_h, new_w, top, left)


def describe(image: np.ndarray) -> str:
    """'a 2x3 RGB image': how messages name an input (its size and kind, never its values)."""
    kind = "grayscale" if image.ndim == 2 else ("RGBA" if image.shape[2] == 4 else "RGB")
    return f"a {image.shape[0]}x{image.shape[1]} {kind} image"


def check_output(value, images: list[np.ndarray], size: int, what: str) -> torch.Tensor:
    """Check a preprocess output: shape, finite, padding 0, image area within the tolerance.

    Any floating dtype is accepted here (the dtype is output_dtype_shape's job).
    """
    value = expect_tensor(value, what=what, shape=(len(images), 3, size, size))
    assert value.is_floating_point(), f"{what}: the result is not a floating-point tensor"
    got_all = value.detach().to("cpu", torch.float64).numpy()
    for index, image in enumerate(images):
        check_one(got_all[index], image, size, f"{what}, {describe(image)} (size {size})")
    return value


def check_one(got: np.ndarray, image: np.ndarray, size: int, what: str) -> None:
    want, (new_h, new_w, top, left) = expected_image(image, size)
    assert np.isfinite(got).all(), f"{what}: the result has NaN or infinite values"
    inside = np.zeros((size, size), dtype=bool)
    inside[top:top + new_h, left:left + new_w] = True
    padding = np.abs(got[:, ~inside])
    if padding.size and padding.max() > PAD_ATOL:
        raise AssertionError(f"{what}: {explain_geometry(got, image, size)}")
    error = np.abs(got[:, inside] - want[:, inside])
    mean_error, max_error = float(error.mean()), float(error.max())
    if mean_error > MEAN_ATOL or max_error > MAX_ATOL:
        raise AssertionError(
            f"{what}: the image area differs from an antialiased bilinear resize, normalised "
            f"(mean error {mean_error:.3g}, largest {max_error:.3g}; tolerance: mean {MEAN_ATOL:g}, "
            f"largest {MAX_ATOL:g})"
        )


def explain_geometry(got: np.ndarray, image: np.ndarray, size: int) -> str:
    """Why the padding of one output image is not 0, in words (no values)."""
    height, width = image.shape[:2]
    new_h, new_w, top, left = geometry(height, width, size)
    nonzero = (np.abs(got) > PAD_ATOL).any(axis=0)
    pad = ~np.zeros((size, size), dtype=bool)
    pad[top:top + new_h, left:left + new_w] = False
    pad_values = got[:, pad]
    pad_color = -MEAN / STD
    if pad.any() and np.allclose(pad_values, pad_color[:, None], atol=1e-3):
        return "the padding is not 0: it looks like 0 was padded before normalising (pad after, with 0)"
    rows = np.flatnonzero(nonzero.any(axis=1))
    cols = np.flatnonzero(nonzero.any(axis=0))
    if len(rows) and len(cols):
        got_h, got_w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        if (got_h, got_w) == (size, size):
            return ("the padding is not 0: the image covers the whole output (letterbox it: keep its "
                    "aspect ratio and pad with 0)")
        if (got_h, got_w) == (new_h, new_w):
            return ("the padding is not 0: the image area has the right size but is misplaced "
                    "(it must start at ((size - new_h) // 2, (size - new_w) // 2))")
        return ("the padding is not 0: the image area does not have the size "
                "max(1, round(H * scale)) x max(1, round(W * scale)) at the centre")
    return "the padding is not 0"


def load_photo(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / name) as photo:
        return np.asarray(photo).copy()


def expected_boxes(boxes: torch.Tensor, image_hw: tuple[int, int], size: int) -> torch.Tensor:
    """float64 boxes mapped with the per-axis scale new_w / W, new_h / H and the letterbox offset."""
    height, width = image_hw
    new_h, new_w, top, left = geometry(height, width, size)
    b = boxes.detach().to("cpu", torch.float64)
    scale = torch.tensor([new_w / width, new_h / height] * 2, dtype=torch.float64)
    offset = torch.tensor([left, top] * 2, dtype=torch.float64)
    return b * scale + offset
