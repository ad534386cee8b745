"""Known good, pipeline style (as albumentations and torchvision transforms are built): one small class
per operation, applied in turn to an (image, boxes) state; the image moved with index arithmetic
(index_select, transpose), resized with antialiased interpolate and truncated to uint8; the sampler
picks from explicit lists of choices with torch.randperm.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class State:
    image: torch.Tensor  # [C, H, W]
    boxes: torch.Tensor  # [N, 4] float64

    @property
    def height(self):
        return self.image.shape[1]

    @property
    def width(self):
        return self.image.shape[2]


class HorizontalFlip:
    def __call__(self, s):
        reverse = torch.arange(s.width - 1, -1, -1)
        x1, y1, x2, y2 = s.boxes.T
        return State(s.image.index_select(2, reverse), torch.stack([s.width - x2, y1, s.width - x1, y2], 1))


class QuarterTurn:
    """One quarter turn counter-clockwise: column x becomes row W - 1 - x."""

    def __call__(self, s):
        reverse = torch.arange(s.width - 1, -1, -1)
        image = s.image.index_select(2, reverse).transpose(1, 2)
        x1, y1, x2, y2 = s.boxes.T
        return State(image, torch.stack([y1, s.width - x2, y2, s.width - x1], 1))


class Crop:
    def __init__(self, top, left, height, width):
        self.top, self.left, self.height, self.width = top, left, height, width

    def __call__(self, s):
        image = s.image[:, self.top:self.top + self.height, self.left:self.left + self.width]
        offset = torch.tensor([self.left, self.top, self.left, self.top], dtype=s.boxes.dtype)
        limit = torch.tensor([self.width, self.height, self.width, self.height], dtype=s.boxes.dtype)
        boxes = torch.minimum((s.boxes - offset).clamp(min=0), limit)
        return State(image, boxes)


class Resize:
    def __init__(self, height, width):
        self.height, self.width = height, width

    def __call__(self, s):
        if (self.height, self.width) == (s.height, s.width):
            return s
        factor = torch.tensor([self.width / s.width, self.height / s.height] * 2, dtype=s.boxes.dtype)
        resized = F.interpolate(s.image[None].float(), size=(self.height, self.width), mode="bilinear",
                                align_corners=False, antialias=True)[0]
        if s.image.dtype == torch.uint8:
            resized = resized.clamp(0, 255).to(torch.uint8)  # truncates, which the statement accepts
        return State(resized.to(s.image.dtype), s.boxes * factor)


def _area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def augment(image, boxes, labels, params, min_visibility=0.25):
    from_numpy = isinstance(image, np.ndarray)
    state = State(torch.from_numpy(np.array(image)).permute(2, 0, 1) if from_numpy else image,
                  boxes.to(torch.float64))
    steps = [HorizontalFlip()] if params["flip"] else []
    steps += [QuarterTurn()] * (params["rotate"] % 4)
    for step in steps:
        state = step(state)
    before = _area(state.boxes)
    state = Crop(*params["crop"])(state)
    visible = _area(state.boxes)
    keep = (visible > 0) & (visible >= min_visibility * before)
    state = Resize(*params["size"])(state)
    picture = state.image.permute(1, 2, 0).contiguous().numpy() if from_numpy else state.image.contiguous()
    return picture, state.boxes[keep].to(boxes.dtype), labels[keep]


def _choice(generator, options):
    return options[int(torch.randperm(len(options), generator=generator)[0])]


def sample_params(generator, image_hw, out_hw):
    flip = _choice(generator, [False, True])
    rotate = _choice(generator, [0, 1, 2, 3])
    height, width = image_hw[::-1] if rotate in (1, 3) else image_hw
    crop_h = _choice(generator, list(range((height + 1) // 2, height + 1)))
    crop_w = _choice(generator, list(range((width + 1) // 2, width + 1)))
    top = _choice(generator, list(range(height - crop_h + 1)))
    left = _choice(generator, list(range(width - crop_w + 1)))
    return {"flip": flip, "rotate": rotate, "crop": (top, left, crop_h, crop_w), "size": tuple(out_hw)}
