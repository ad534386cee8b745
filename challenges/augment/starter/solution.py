"""Your solution to the `augment` challenge. Read README.md for the full statement.

Run the public checks with `cvgrade test DIR` and grade yourself with
`cvgrade grade DIR/solution.py --challenge augment`.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def augment(image, boxes: Tensor, labels: Tensor, params: dict, min_visibility: float = 0.25):
    """Flip, rotate, crop and resize an image and its boxes, in that order.

    Args:
        image: a tensor [C, H, W] (uint8 or float32) or a numpy array [H, W, C] (uint8).
        boxes: [N, 4] float32 or float64 tensor of (x1, y1, x2, y2) in pixels, inside the image.
        labels: [N] integer tensor, one label per box.
        params: {"flip": bool, "rotate": int (quarter turns, counter-clockwise, 0 to 3),
                 "crop": (top, left, height, width) in the flipped and rotated image,
                 "size": (out_h, out_w) to resize the crop to}.
        min_visibility: a box is kept when its clipped area is > 0 and at least this fraction of its area.

    Returns:
        (image, boxes, labels): the image of the same type, dtype and layout as the input, of size
        params["size"]; the kept boxes (clipped, scaled), same dtype; their labels, same dtype, same order.
        Do not modify the inputs. No Python loop over the boxes.
    """
    raise NotImplementedError("write augment")


def sample_params(generator: torch.Generator, image_hw: tuple[int, int], out_hw: tuple[int, int]) -> dict:
    """Draw random parameters for augment, using only ``generator``.

    flip: True or False with probability 1/2; rotate: 0, 1, 2 or 3 with probability 1/4 each;
    crop height uniform on ceil(H'/2)..H' and width on ceil(W'/2)..W' (H' x W': the image after the
    rotation), then top uniform on 0..H' - height and left on 0..W' - width; size: out_hw.
    """
    raise NotImplementedError("write sample_params")
