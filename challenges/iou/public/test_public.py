"""Public checks for the `iou` challenge: run them with `cvgrade test DIR`.

They are easy sanity checks. The graded (hidden) checks test much more: see
README.md, "What is checked".
"""

import torch


def test_identical_boxes_have_iou_one(candidate):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.5, 1.0, 4.0, 8.0]])
    iou = candidate.box_iou(boxes, boxes)
    assert isinstance(iou, torch.Tensor), "box_iou must return a torch.Tensor"
    assert iou.shape == (2, 2), "box_iou of 2 and 2 boxes must have shape (2, 2)"
    assert torch.allclose(iou.diagonal(), torch.ones(2)), "IoU of a box with itself must be 1"


def test_disjoint_and_half_overlapping_boxes(candidate):
    boxes1 = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    boxes2 = torch.tensor([[5.0, 5.0, 6.0, 6.0], [1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 1.0, 2.0]])
    iou = candidate.box_iou(boxes1, boxes2)
    assert iou.shape == (1, 3), "box_iou of 1 and 3 boxes must have shape (1, 3)"
    assert iou.dtype == torch.float32, "box_iou of float32 boxes must return float32"
    # disjoint: 0; overlap 2 of union 6: 1/3; box2 inside box1, area 2 of 4: 1/2
    expected = torch.tensor([[0.0, 1.0 / 3.0, 0.5]])
    assert torch.allclose(iou, expected), "IoU of disjoint / overlapping boxes is wrong"


def test_empty_input(candidate):
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    iou = candidate.box_iou(torch.zeros(0, 4), boxes)
    assert iou.shape == (0, 1), "box_iou of 0 and 1 boxes must have shape (0, 1)"


def test_nms_on_three_boxes(candidate):
    boxes = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],
        [1.0, 1.0, 11.0, 11.0],  # IoU 81/119 = 0.68 with box 0
        [20.0, 20.0, 30.0, 30.0],  # far from both
    ])
    scores = torch.tensor([0.8, 0.9, 0.3])
    keep = candidate.nms(boxes, scores, 0.5)
    assert isinstance(keep, torch.Tensor), "nms must return a torch.Tensor"
    assert keep.dtype == torch.int64, "nms must return int64 indices"
    assert keep.tolist() == [1, 2], "nms must keep boxes 1 and 2, in decreasing score order"
