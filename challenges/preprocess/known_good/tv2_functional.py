"""Known good: torchvision.transforms.v2 style. Each image becomes a uint8 `tv_tensors.Image`
(grayscale through `grayscale_to_rgb`, alpha sliced off), is resized with `F.resize`
(antialiased bilinear on uint8, so rounded to whole values), converted with `F.to_dtype(...,
scale=True)`, normalised with `F.normalize` and padded with `F.pad` after normalising, so the
padding is 0. Boxes go through the same v2 kernels as `BoundingBoxes` (resize, then pad), with
clamping turned off because the boxes must not be clipped."""

import math

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from torchvision import tv_tensors

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _letterbox_params(height, width, size):
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = (size - new_h) // 2, (size - new_w) // 2
    # F.pad takes [left, top, right, bottom]
    return (new_h, new_w), [left, top, size - new_w - left, size - new_h - top]


def _to_image(array):
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.ndim == 2:
        return F.grayscale_to_rgb(tv_tensors.Image(tensor))  # [H, W] -> [1, H, W] -> [3, H, W]
    return tv_tensors.Image(tensor.permute(2, 0, 1)[:3])  # HWC -> CHW, alpha dropped


def preprocess(images, size=224):
    batch = []
    for array in images:
        image = _to_image(array)
        new_hw, padding = _letterbox_params(array.shape[0], array.shape[1], size)
        image = F.resize(image, list(new_hw), interpolation=F.InterpolationMode.BILINEAR, antialias=True)
        image = F.to_dtype(image, torch.float32, scale=True)
        image = F.normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        batch.append(F.pad(image, padding, fill=0.0))
    return torch.stack([image.as_subclass(torch.Tensor) for image in batch])


def letterbox_boxes(boxes, image_hw, size=224):
    new_hw, padding = _letterbox_params(image_hw[0], image_hw[1], size)
    boxes = tv_tensors.BoundingBoxes(boxes.clone(), format="XYXY", canvas_size=tuple(image_hw), clamping_mode=None)
    boxes = F.pad(F.resize(boxes, list(new_hw)), padding)
    assert math.isclose(boxes.canvas_size[0], size) and math.isclose(boxes.canvas_size[1], size)
    return boxes.as_subclass(torch.Tensor)
