"""Public checks for the `augment` challenge: run them with `cvgrade test DIR`.

They are easy sanity checks. The graded (hidden) checks test much more: see
README.md, "What is checked".
"""

import torch


def _image():
    return torch.arange(3 * 4 * 6, dtype=torch.uint8).reshape(3, 4, 6)  # C=3, H=4, W=6


def test_flip_moves_boxes(candidate):
    boxes = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    params = {"flip": True, "rotate": 0, "crop": (0, 0, 4, 6), "size": (4, 6)}
    image, out, labels = candidate.augment(_image(), boxes, torch.tensor([5]), params)
    assert torch.equal(image, _image().flip(2)), "a flip must mirror the image left to right"
    assert torch.allclose(out, torch.tensor([[4.0, 1.0, 6.0, 3.0]])), "x1' = W - x2 and x2' = W - x1"
    assert labels.tolist() == [5], "the label stays with its box"


def test_rotate_quarter_turn(candidate):
    boxes = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    params = {"flip": False, "rotate": 1, "crop": (0, 0, 6, 4), "size": (6, 4)}
    image, out, _ = candidate.augment(_image(), boxes, torch.tensor([5]), params)
    assert torch.equal(image, torch.rot90(_image(), 1, dims=(1, 2))), "rotate 1 is torch.rot90(image, 1, dims=(1, 2))"
    assert torch.allclose(out, torch.tensor([[1.0, 4.0, 3.0, 6.0]])), "(x, y) goes to (y, W - x)"


def test_crop_clips_and_drops(candidate):
    boxes = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 1.0, 1.0], [4.0, 3.0, 6.0, 4.0]])
    params = {"flip": False, "rotate": 0, "crop": (1, 2, 3, 4), "size": (3, 4)}
    image, out, labels = candidate.augment(_image(), boxes, torch.tensor([1, 2, 3]), params)
    assert tuple(image.shape) == (3, 3, 4), "the crop (top 1, left 2, height 3, width 4) gives a 3x4 image"
    # box 1: 1 of its 4 pixels is visible (25%: kept), clipped to (0, 0, 1, 1); box 2 is outside the window
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 4.0, 3.0]])), "clip, then shift"
    assert labels.tolist() == [1, 3], "the dropped box takes its label with it"


def test_sampler_is_reproducible(candidate):
    first = candidate.call("adapter.sample_many", 1, 50, [32, 48], [16, 16])["params"]
    second = candidate.call("adapter.sample_many", 1, 50, [32, 48], [16, 16])["params"]
    assert torch.equal(first, second), "the same seed must give the same draws"
