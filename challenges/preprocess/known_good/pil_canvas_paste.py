"""Known good: the classic PIL letterbox (keras-yolo3's `letterbox_image`): `convert("RGB")`
(grayscale replicated, alpha dropped), `resize(..., Image.BILINEAR)`, `paste` onto a new
canvas filled with the mean colour, then normalise the whole canvas in torch and set the
padding to exactly 0 with a mask (the mean colour in whole uint8 values is only close to 0)."""

import numpy as np
import torch
from PIL import Image

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
MEAN_COLOUR = (124, 116, 104)


def letterbox_image(image, size):
    """Resize a PIL image with unchanged aspect ratio, centred on a size x size canvas."""
    iw, ih = image.size
    scale = size / max(iw, ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    dx, dy = (size - nw) // 2, (size - nh) // 2
    canvas = Image.new("RGB", (size, size), MEAN_COLOUR)
    canvas.paste(image.resize((nw, nh), Image.BILINEAR), (dx, dy))
    return canvas, (dx, dy, nw, nh)


def preprocess(images, size=224):
    batch = torch.zeros(len(images), 3, size, size)
    for i, array in enumerate(images):
        canvas, (dx, dy, nw, nh) = letterbox_image(Image.fromarray(array).convert("RGB"), size)
        x = torch.from_numpy(np.array(canvas)).permute(2, 0, 1).float() / 255.0
        x = (x - MEAN) / STD
        inside = torch.zeros(size, size, dtype=torch.bool)
        inside[dy:dy + nh, dx:dx + nw] = True
        batch[i] = x * inside
    return batch


def letterbox_boxes(boxes, image_hw, size=224):
    ih, iw = image_hw
    scale = size / max(iw, ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    dx, dy = (size - nw) // 2, (size - nh) // 2
    out = boxes.clone()
    out[:, [0, 2]] = boxes[:, [0, 2]] * nw / iw + dx
    out[:, [1, 3]] = boxes[:, [1, 3]] * nh / ih + dy
    return out
