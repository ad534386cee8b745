"""`iou`'s NMS oracle keeps what `torchvision.ops.nms` keeps, in the same order, on every input
`nms_matches_torchvision` draws, so the judge need not import torchvision to check agreement with it.

The hidden check module is loaded directly (its `candidate` fixture is not used here); the
inputs are drawn exactly as the check draws them: the same seed, sizes, thresholds and dtypes.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
import torchvision

from tests.challenges.files import load_file

HIDDEN = Path(__file__).resolve().parents[2] / "challenges" / "iou" / "hidden"


@pytest.fixture(scope="module")
def checks() -> ModuleType:
    return load_file("iou_hidden_nms_under_test", HIDDEN / "test_nms.py")


def test_the_oracle_agrees_with_torchvision_on_every_input_the_check_draws(checks: ModuleType) -> None:
    gen = torch.Generator().manual_seed(2024)  # the check's seed and loop, in its order
    compared = 0
    for k in (1, 2, 10, 100, 600):
        for threshold in (0.3, 0.5, 0.7):
            for dtype in (torch.float32, torch.float64):
                if dtype == torch.float64 and k not in (10, 600):
                    continue
                boxes, scores = checks.random_detections(gen, k, threshold, dtype)
                expected = torchvision.ops.nms(boxes, scores, threshold)
                got = checks.nms_oracle(boxes, scores, threshold)
                assert got.dtype == torch.int64
                assert torch.equal(got, expected), f"{k} {dtype} boxes at threshold {threshold}"
                compared += 1
    assert compared == 21


def test_the_oracle_agrees_with_torchvision_on_other_random_sets(checks: ModuleType) -> None:
    gen = torch.Generator().manual_seed(7)
    for k in (3, 50, 200):
        for threshold in (0.2, 0.45, 0.9):
            boxes, scores = checks.random_detections(gen, k, threshold, torch.float32)
            assert torch.equal(checks.nms_oracle(boxes, scores, threshold),
                               torchvision.ops.nms(boxes, scores, threshold))


def test_the_oracle_is_greedy_from_the_highest_score(checks: ModuleType) -> None:
    # box 1 (best) suppresses box 0 (IoU 0.54); box 2 overlaps box 0 but not box 1 enough: kept
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [-3.0, 0.0, 7.0, 10.0], [3.0, 0.0, 13.0, 10.0]])
    scores = torch.tensor([0.5, 0.9, 0.7])
    assert checks.nms_oracle(boxes, scores, 0.5).tolist() == [1, 2]
    assert checks.nms_oracle(boxes, scores, 0.0).tolist() == [1]
