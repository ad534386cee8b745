"""Known good: the letterbox done with PIL and numpy, as many candidates will write it.

PIL's BILINEAR resize (antialiased when shrinking, rounded to whole uint8 values) differs
from the reference's float resize in small details; the statement promises it is accepted.
Normalisation in numpy float32, padding filled with zeros after normalising.
"""

import numpy as np
import torch
from PIL import Image
from torch import Tensor

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def preprocess(images: list[np.ndarray], size: int = 224) -> Tensor:
    batch = np.zeros((len(images), size, size, 3), dtype=np.float32)
    for index, image in enumerate(images):
        if image.ndim == 2:
            pil = Image.fromarray(image).convert("RGB")
        else:
            pil = Image.fromarray(np.ascontiguousarray(image[:, :, :3]))
        new_h, new_w, top, left = _geometry(image.shape[0], image.shape[1], size)
        resized = np.asarray(pil.resize((new_w, new_h), Image.BILINEAR), dtype=np.float32) / 255.0
        batch[index, top:top + new_h, left:left + new_w] = (resized - MEAN) / STD
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def letterbox_boxes(boxes: Tensor, image_hw: tuple[int, int], size: int = 224) -> Tensor:
    height, width = image_hw
    new_h, new_w, top, left = _geometry(height, width, size)
    x = boxes[:, 0::2] * (new_w / width) + left
    y = boxes[:, 1::2] * (new_h / height) + top
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
