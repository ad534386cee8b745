"""Hidden checks for coco_map: agreement with pycocotools' COCOeval on hand-made, random and adversarial cases.

The expected figures always come from COCOeval itself (coco_oracle), run here in the judge.
"""

from __future__ import annotations

import torch
from cases import dataset
from coco_oracle import coco_eval
from compare import as_float, check_result

from grader.judgekit import expect_tensor


def make(boxes, scores, labels, images, dtype=torch.float32):
    return {"boxes": torch.tensor(boxes, dtype=dtype).reshape(-1, 4), "scores": torch.tensor(scores, dtype=dtype),
            "labels": torch.tensor(labels, dtype=torch.int64), "image_ids": torch.tensor(images, dtype=torch.int64)}


def truths(boxes, labels, images, dtype=torch.float32):
    return {"boxes": torch.tensor(boxes, dtype=dtype).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64),
            "image_ids": torch.tensor(images, dtype=torch.int64)}


def agree(candidate, detections, ground_truths, num_images, num_classes, what):
    expected = coco_eval(detections, ground_truths, num_images, num_classes)
    check_result(candidate.coco_map(detections, ground_truths, num_images, num_classes), expected, num_classes, what)


A, B, C = [0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]


def test_output_format(candidate):
    """Types and shapes only: the values are the other checks' business."""
    for dtype in (torch.float32, torch.float64):
        detections = make([A, B], [0.9, 0.8], [0, 1], [0, 0], dtype=dtype)
        ground_truths = truths([A, C], [0, 1], [0, 0], dtype=dtype)
        value = candidate.coco_map(detections, ground_truths, 1, 3)
        assert isinstance(value, dict), "coco_map must return a dict"
        for key in ("ap", "ap_per_class", "map", "map_50", "map_75"):
            assert key in value, f"coco_map's result must have the key {key!r}"
        for key, shape in (("ap", (3, 10)), ("ap_per_class", (3,))):
            tensor = expect_tensor(value[key], what=f"result[{key!r}] for 3 classes", shape=shape)
            assert tensor.is_floating_point(), f"result[{key!r}] must be a floating-point tensor"
        for key in ("map", "map_50", "map_75"):
            as_float(value[key], f"result[{key!r}]")
    value = candidate.coco_map(make([], [], [], []), truths([], [], []), 0, 2)
    assert isinstance(value, dict) and "ap" in value, "coco_map of no images must return a dict too"
    expect_tensor(value["ap"], what="result['ap'] for no images and 2 classes", shape=(2, 10))


# name, detections (boxes, scores, labels, images), ground truths (boxes, labels, images), images, classes
HAND_MADE = [
    ("perfect detections", ([A, B, C], [0.9, 0.8, 0.7], [0, 0, 1], [0, 0, 1]), ([A, B, C], [0, 0, 1], [0, 0, 1]), 2, 2),
    ("a false positive scored above the true one", ([B, A], [0.9, 0.5], [0, 0], [0, 0]), ([A], [0], [0]), 1, 1),
    ("a false positive scored below the true one", ([B, A], [0.4, 0.5], [0, 0], [0, 0]), ([A], [0], [0]), 1, 1),
    ("a detection of the wrong class", ([A], [0.9], [1], [0]), ([A], [0], [0]), 1, 2),
    ("a detection on the wrong image", ([A], [0.9], [0], [1]), ([A], [0], [0]), 2, 1),
    ("IoU exactly 0.5 (matched at 0.50 only)", ([[0, 0, 2, 1]], [0.9], [0], [0]), ([[0, 0, 1, 1]], [0], [0]), 1, 1),
    ("IoU exactly 0.75 (matched up to 0.75)", ([[0, 0, 4, 1]], [0.9], [0], [0]), ([[0, 0, 3, 1]], [0], [0]), 1, 1),
    ("half the ground truths found", ([A, B], [0.9, 0.8], [0, 0], [0, 1]),
     ([A, B, C, [40, 40, 50, 50]], [0, 0, 0, 0], [0, 1, 0, 1]), 2, 1),
    ("a touching box (IoU 0)", ([[10, 0, 20, 10]], [0.9], [0], [0]), ([A], [0], [0]), 1, 1),
    ("a zero-area ground truth", ([A, [5, 5, 5, 8]], [0.9, 0.8], [0, 0], [0, 0]),
     ([A, [5, 5, 5, 8]], [0, 0], [0, 0]), 1, 1),
]


def test_hand_made_cases(candidate):
    for dtype in (torch.float32, torch.float64):
        for name, det, gt, num_images, num_classes in HAND_MADE:
            agree(candidate, make(*det, dtype=dtype), truths(*gt, dtype=dtype), num_images, num_classes,
                  f"{name} ({dtype})")


def test_random_agreement(candidate):
    for seed, num_images, num_classes, dtype in ((1, 20, 3, torch.float32), (2, 60, 8, torch.float32),
                                                 (3, 150, 5, torch.float64), (4, 7, 12, torch.float32),
                                                 (5, 300, 4, torch.float32)):
        detections, ground_truths = dataset(seed, num_images, num_classes, dtype=dtype)
        agree(candidate, detections, ground_truths, num_images, num_classes,
              f"{num_images} random images, {num_classes} classes ({dtype})")


def test_no_detections_or_no_truths(candidate):
    detections, ground_truths = dataset(10, 30, 4)
    empty_dets = make([], [], [], [])
    empty_gts = truths([], [], [])
    agree(candidate, empty_dets, ground_truths, 30, 4, "no detections at all (AP 0 for every class with ground truth)")
    agree(candidate, detections, empty_gts, 30, 4, "no ground truth at all (every AP -1, mAP -1)")
    agree(candidate, empty_dets, empty_gts, 30, 4, "neither detections nor ground truths")
    agree(candidate, empty_dets, empty_gts, 0, 3, "no images")
    # images 30..39 have nothing at all; they change nothing
    agree(candidate, detections, ground_truths, 40, 4, "images without detections or ground truths")


def test_class_in_one_only(candidate):
    detections, ground_truths = dataset(20, 40, 5)
    only_dets = detections["labels"] == 3
    gts_kept = ground_truths["labels"] != 3  # class 3: detections only
    dets_kept = detections["labels"] != 1  # class 1: ground truths only
    detections = {k: v[dets_kept] for k, v in detections.items()}
    ground_truths = {k: v[gts_kept] for k, v in ground_truths.items()}
    assert bool(only_dets.any())
    agree(candidate, detections, ground_truths, 40, 5,
          "a class with detections but no ground truth (AP -1, left out of mAP) and one with ground truth but "
          "no detections (AP 0, counted)")
    agree(candidate, detections, ground_truths, 40, 7, "classes that appear nowhere (AP -1)")


def test_duplicate_detections(candidate):
    # the same box reported several times: one true positive, the rest false positives
    agree(candidate, make([A, A, A, B], [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0], [0, 0, 0, 0]),
          truths([A, B], [0, 0], [0, 0]), 1, 1, "a ground truth detected three times")
    agree(candidate, make([A, A], [0.5, 0.5], [0, 0], [0, 0]), truths([A], [0], [0]), 1, 1,
          "a ground truth detected twice with the same score")
    detections, ground_truths = dataset(30, 50, 3)
    doubled = {k: torch.cat([v, v]) for k, v in detections.items()}
    agree(candidate, doubled, ground_truths, 50, 3, "every detection reported twice")


def test_equal_scores(candidate):
    # ties across images: COCO orders equal scores by image id, then by position in the input
    agree(candidate, make([B, A, A], [0.5, 0.5, 0.5], [0, 0, 0], [1, 0, 2]), truths([A, A], [0, 0], [0, 2]), 3, 1,
          "equal scores on three images, a false positive first in the input")
    agree(candidate, make([A, B], [0.5, 0.5], [0, 0], [0, 0]), truths([A], [0], [0]), 1, 1,
          "equal scores in one image, the true positive first")
    agree(candidate, make([B, A], [0.5, 0.5], [0, 0], [0, 0]), truths([A], [0], [0]), 1, 1,
          "equal scores in one image, the false positive first")
    # one detection overlaps two ground truths equally (IoU 9/11 each): COCO matches the last of them
    g1, g2, between = [0, 0, 10, 10], [2, 0, 12, 10], [1, 0, 11, 10]
    for order, what in (([g2, g1], "listed second"), ([g1, g2], "listed first")):
        agree(candidate, make([between, g2], [0.9, 0.8], [0, 0], [0, 0]), truths(order, [0, 0], [0, 0]), 1, 1,
              f"a detection with equal IoU with two ground truths, the better-placed one {what}")
    for seed, levels in ((40, 5), (41, 20)):
        detections, ground_truths = dataset(seed, 80, 4, score_levels=levels)
        agree(candidate, detections, ground_truths, 80, 4, f"random detections with scores rounded to {levels} levels")


def test_max_detections(candidate):
    # 150 detections of one class in one image: only the 100 best count, per image and per class
    gen = torch.Generator().manual_seed(50)
    corner = torch.rand(150, 2, generator=gen) * 500
    boxes = torch.cat([corner, corner + 20 + torch.rand(150, 2, generator=gen) * 40], dim=1)
    scores = torch.rand(150, generator=gen)
    truth_boxes = boxes[::3] + 1.0  # a third of them are close to a ground truth (IoU above 0.8)
    for labels, what in ((torch.zeros(150, dtype=torch.int64), "150 detections of one class in one image"),
                         (torch.arange(150) % 2, "75 detections of each of two classes in one image")):
        detections = {"boxes": boxes, "scores": scores, "labels": labels,
                      "image_ids": torch.zeros(150, dtype=torch.int64)}
        ground_truths = {"boxes": truth_boxes, "labels": labels[::3], "image_ids": torch.zeros(50, dtype=torch.int64)}
        agree(candidate, detections, ground_truths, 1, 2, what)
    detections = {"boxes": torch.cat([boxes, boxes + 2]), "scores": torch.cat([scores, scores * 0.9]),
                  "labels": torch.cat([torch.zeros(150, dtype=torch.int64), torch.ones(150, dtype=torch.int64)]),
                  "image_ids": torch.zeros(300, dtype=torch.int64)}
    ground_truths = {"boxes": torch.cat([truth_boxes, truth_boxes + 2]),
                     "labels": torch.cat([torch.zeros(50, dtype=torch.int64), torch.ones(50, dtype=torch.int64)]),
                     "image_ids": torch.zeros(100, dtype=torch.int64)}
    agree(candidate, detections, ground_truths, 1, 2, "150 detections of each of two classes in one image")
    detections, ground_truths = dataset(51, 3, 2, truths_per_image=60, false_positives_per_image=80)
    agree(candidate, detections, ground_truths, 3, 2, "random crowded images")
