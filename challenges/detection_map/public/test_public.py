"""Public checks for the `detection_map` challenge: run them with `cvgrade test DIR`.

They are easy sanity checks. The graded (hidden) checks compare with COCO's own evaluator on
many more cases: see README.md, "What is checked".
"""

import torch

A, B = [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]


def _dets(boxes, scores, labels, images):
    return {"boxes": torch.tensor(boxes).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.int64), "image_ids": torch.tensor(images, dtype=torch.int64)}


def _gts(boxes, labels, images):
    return {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64),
            "image_ids": torch.tensor(images, dtype=torch.int64)}


def test_perfect_detections_score_one(candidate):
    result = candidate.coco_map(_dets([A, B], [0.9, 0.8], [0, 1], [0, 0]), _gts([A, B], [0, 1], [0, 0]), 1, 2)
    assert torch.allclose(result["ap"].double(), torch.ones(2, 10, dtype=torch.float64)), "every AP must be 1"
    assert abs(float(result["map"]) - 1.0) < 1e-9, "mAP must be 1"


def test_false_positive_above_the_true_one(candidate):
    # recall reaches 1 only at precision 1/2: the 101 interpolated points are all 0.5
    result = candidate.coco_map(_dets([B, A], [0.9, 0.5], [0, 0], [0, 0]), _gts([A], [0], [0]), 1, 1)
    assert abs(float(result["map"]) - 0.5) < 1e-9, "mAP must be 0.5"


def test_class_without_ground_truth_is_minus_one(candidate):
    result = candidate.coco_map(_dets([A, B], [0.9, 0.8], [0, 1], [0, 0]), _gts([A], [0], [0]), 1, 2)
    assert torch.all(result["ap"][1] == -1), "class 1 has no ground truth: its AP is -1 at every threshold"
    assert abs(float(result["map"]) - 1.0) < 1e-9, "class 1 is left out of mAP"


def test_iou_exactly_half(candidate):
    # IoU 0.5: a true positive at threshold 0.50 only
    detections = _dets([[0.0, 0.0, 2.0, 1.0]], [0.9], [0], [0])
    result = candidate.coco_map(detections, _gts([[0.0, 0.0, 1.0, 1.0]], [0], [0]), 1, 1)
    assert abs(float(result["map_50"]) - 1.0) < 1e-9 and abs(float(result["map_75"])) < 1e-9, "AP50 1, AP75 0"
    assert abs(float(result["map"]) - 0.1) < 1e-9, "mAP is the mean over ten thresholds: 0.1"
