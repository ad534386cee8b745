"""Your solution to the `preprocess` challenge. Read README.md for the full statement.

Run the public checks with `cvgrade test DIR` and grade yourself with
`cvgrade grade DIR/solution.py --challenge preprocess`.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

MEAN = (0.485, 0.456, 0.406)  # ImageNet, RGB
STD = (0.229, 0.224, 0.225)


def preprocess(images: list[np.ndarray], size: int = 224) -> Tensor:
    """Letterbox a batch of images into size x size and normalise them for an ImageNet classifier.

    Args:
        images: a non-empty list of uint8 numpy arrays, each HxWx3 (RGB), HxW (grayscale:
            replicate it to 3 channels) or HxWx4 (RGBA: drop the alpha channel). Sizes differ.
        size: the side of the square output.

    Returns:
        float32 tensor [B, 3, size, size], channels RGB. Each image is resized with antialiased
        bilinear interpolation to max(1, round(H * s)) x max(1, round(W * s)), s = size / max(H, W),
        placed at row (size - new_h) // 2 and column (size - new_w) // 2, scaled to [0, 1] and
        normalised with MEAN and STD; the padding is 0 (after normalisation).
        Do not modify the list or its arrays.
    """
    raise NotImplementedError("write preprocess")


def letterbox_boxes(boxes: Tensor, image_hw: tuple[int, int], size: int = 224) -> Tensor:
    """Map boxes from an original image to its letterboxed version made by preprocess.

    Args:
        boxes: [N, 4] float tensor of (x1, y1, x2, y2) in the original image's continuous
            pixel coordinates (x to the right, y down). N may be 0.
        image_hw: (H, W) of the original image.
        size: the same size as given to preprocess.

    Returns:
        [N, 4] tensor, same dtype: x' = x * new_w / W + left and y' = y * new_h / H + top,
        with new_h, new_w, top, left as in preprocess. No clipping. Do not modify boxes.
    """
    raise NotImplementedError("write letterbox_boxes")
