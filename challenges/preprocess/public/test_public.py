"""Public checks for the `preprocess` challenge: run them with `cvgrade test DIR`.

They are easy sanity checks. The graded (hidden) checks test much more: see
README.md, "What is checked".
"""

import numpy as np
import torch

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])


def test_shape_and_dtype(candidate):
    image = np.full((480, 640, 3), 128, dtype=np.uint8)
    out = candidate.preprocess([image])
    assert isinstance(out, torch.Tensor), "preprocess must return a torch.Tensor"
    assert out.shape == (1, 3, 224, 224), "preprocess of one image must have shape (1, 3, 224, 224)"
    assert out.dtype == torch.float32, "preprocess must return float32"
    out = candidate.preprocess([image, image[:100, :50]], size=96)
    assert out.shape == (2, 3, 96, 96), "preprocess of two images with size=96 must have shape (2, 3, 96, 96)"


def test_red_image_is_normalised_and_centred(candidate):
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[:, :, 0] = 255  # pure red, 640 wide and 480 high: resized to 224 x 168, 28 rows of padding above
    out = candidate.preprocess([image])[0]
    expected = (torch.tensor([1.0, 0.0, 0.0]) - MEAN) / STD
    assert torch.allclose(out[:, 28:196, :], expected.view(3, 1, 1).expand(3, 168, 224), atol=1e-3), (
        "the image area of a pure red image must be (value / 255 - mean) / std per channel, RGB order"
    )
    assert bool((out[:, :28] == 0).all()) and bool((out[:, 196:] == 0).all()), (
        "the 28 rows above and below a 640x480 image must be padding, 0 after normalisation"
    )


def test_grayscale_and_rgba(candidate):
    gray = np.full((50, 50), 200, dtype=np.uint8)
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)
    rgba[:, :, :3] = 200
    rgba[:, :, 3] = 17  # alpha is dropped
    out = candidate.preprocess([gray, rgba], size=32)
    assert out.shape == (2, 3, 32, 32), "a grayscale and an RGBA image give shape (2, 3, 32, 32)"
    expected = (torch.full((3,), 200 / 255) - MEAN) / STD
    for index, kind in enumerate(("grayscale", "RGBA")):
        assert torch.allclose(out[index], expected.view(3, 1, 1).expand(3, 32, 32), atol=1e-3), (
            f"a square {kind} image of value 200 must give (200 / 255 - mean) / std in all 3 channels"
        )


def test_letterbox_boxes(candidate):
    boxes = torch.tensor([[0.0, 0.0, 640.0, 480.0], [100.0, 50.0, 200.0, 150.0]])
    out = candidate.letterbox_boxes(boxes, (480, 640))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4), "letterbox_boxes must return an [N, 4] tensor"
    assert out.dtype == torch.float32, "letterbox_boxes of float32 boxes must return float32"
    expected = torch.tensor([[0.0, 28.0, 224.0, 196.0], [35.0, 45.5, 70.0, 80.5]])
    assert torch.allclose(out, expected, atol=1e-4), "boxes of a 640x480 image are not mapped as in the README example"
