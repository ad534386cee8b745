"""Comparing a `detection_map` result with COCOeval's, with messages safe to show a candidate.

Not a test module: the test files import it by name (the judge puts this folder on sys.path).
"""

from __future__ import annotations

from typing import Any

import torch

from grader.judgekit import expect_tensor

TOLERANCE = 1e-6  # absolute, on every AP figure; COCOeval and a float64 re-implementation agree to 1e-15
THRESHOLD_NAMES = [f"{0.5 + 0.05 * t:.2f}" for t in range(10)]


def as_float(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        assert value.numel() == 1 and value.dim() == 0, f"{what} must be a number (a float or a 0-d tensor)"
        return float(value.item())
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{what} must be a number"
    return float(value)


def check_result(value: Any, expected: dict[str, Any], num_classes: int, what: str,
                 tolerance: float = TOLERANCE) -> None:
    assert isinstance(value, dict), f"{what}: coco_map must return a dict"
    missing = {"ap", "ap_per_class", "map", "map_50", "map_75"} - set(value)
    assert not missing, f"{what}: the result has no {', '.join(sorted(missing))}"
    ap = expect_tensor(value["ap"], what=f"{what}: result['ap']", shape=(num_classes, 10))
    assert ap.is_floating_point(), f"{what}: result['ap'] must be a floating-point tensor"
    got = ap.detach().cpu().to(torch.float64)
    want = expected["ap"]
    assert bool(torch.isfinite(got).all()), (
        f"{what}: result['ap'] has NaN or infinite values (a class without ground truth has AP -1, not NaN)")
    undefined = want < -0.5
    wrong_undefined = (got[undefined] != -1).any() if bool(undefined.any()) else False
    assert not wrong_undefined, (
        f"{what}: a class without ground truth must have AP -1 at every threshold")
    assert not bool((got[~undefined] < -0.5).any()), (
        f"{what}: a class with ground truth got AP -1 (undefined); its AP is defined (0 without detections)")
    error = (got - want).abs()
    bad = error > tolerance
    if bool(bad.any()):
        classes = int(bad.any(dim=1).sum())
        thresholds = ", ".join(THRESHOLD_NAMES[t] for t in torch.flatnonzero(bad.any(dim=0)).tolist())
        raise AssertionError(
            f"{what}: the AP of {classes} class(es) differs from COCO's at IoU {thresholds} "
            f"(largest difference {float(error.max()):.3g}, tolerance {tolerance:g})")
    per_class = expect_tensor(value["ap_per_class"], what=f"{what}: result['ap_per_class']", shape=(num_classes,))
    per_class_error = (per_class.detach().cpu().to(torch.float64) - expected["ap_per_class"]).abs()
    assert bool((per_class_error <= tolerance).all()), (
        f"{what}: result['ap_per_class'] is not the mean of each class's AP over the ten thresholds "
        "(-1 for a class without ground truth)")
    for key, name in (("map", "mAP"), ("map_50", "AP50"), ("map_75", "AP75")):
        got_value = as_float(value[key], f"{what}: result['{key}']")
        assert abs(got_value - expected[key]) <= tolerance, (
            f"{what}: {name} differs from COCO's by {abs(got_value - expected[key]):.3g} "
            f"(tolerance {tolerance:g}; -1 when no class has ground truth)")
