"""Hidden check: augment of a 3x480x640 uint8 image with 50,000 boxes, relative to the reference.

Every timed call gets boxes and parameters it has never seen, drawn from a seed chosen for this
run, and every timed output is checked against the oracle: caching outputs or returning garbage
when timed gains nothing. Reference and candidate alternate on the same inputs, timed by the
judge around the whole round trip.
"""

from __future__ import annotations

import secrets
import statistics

import numpy as np
import torch
from augment_oracle import DECISION_MARGIN, check_result, expected_boxes
from cases import as_tensor, random_boxes, smooth_image

from grader.judgekit import finite_ratio

# Enough boxes that the work on them, not the image or the round trip, decides the time: with
# 10,000, a Python loop over the boxes came within 10x of the reference on a loaded machine.
HEIGHT, WIDTH, BOXES, OUT = 480, 640, 50_000, (320, 320)
REPEATS = 7
MAX_RATIO = 10.0
# A call is stopped at TIMEOUT_RATIO times the reference's time (at least MIN_TIMEOUT_S).
TIMEOUT_RATIO = 30.0
MIN_TIMEOUT_S = 3.0


def workload(seed: int):
    rng = np.random.default_rng(seed)
    image = as_tensor(smooth_image(rng, HEIGHT, WIDTH))
    boxes = random_boxes(rng, BOXES, HEIGHT, WIDTH)
    rotate = int(rng.integers(0, 4))
    height, width = (WIDTH, HEIGHT) if rotate % 2 else (HEIGHT, WIDTH)
    crop_h, crop_w = int(rng.integers(height // 2, height)), int(rng.integers(width // 2, width))
    params = {"flip": bool(rng.integers(0, 2)), "rotate": rotate,
              "crop": (int(rng.integers(0, height - crop_h)), int(rng.integers(0, width - crop_w)), crop_h, crop_w),
              "size": OUT}
    boxes = boxes[expected_boxes(boxes, (HEIGHT, WIDTH), params, 0.25)[2] > DECISION_MARGIN]  # no near-ties
    labels = torch.from_numpy(rng.integers(0, 80, len(boxes)))
    return image, torch.from_numpy(boxes).to(torch.float32), labels, params


def test_speed(candidate, reference, record):
    run_seed = secrets.randbits(31)
    warmup = workload(run_seed)
    _, ref_warmup = reference.timed("augment", *warmup)
    value, _ = candidate.timed("augment", *warmup, timeout_s=max(MIN_TIMEOUT_S, TIMEOUT_RATIO * ref_warmup))
    check_result(value, *warmup, 0.25, "augment of a 480x640 image with 50,000 boxes")

    ref_times: list[float] = []
    cand_times: list[float] = []
    for repeat in range(REPEATS):
        inputs = workload(run_seed + 1 + repeat)
        ref_times.append(reference.timed("augment", *inputs)[1])
        timeout_s = max(MIN_TIMEOUT_S, TIMEOUT_RATIO * statistics.median(ref_times))
        value, seconds = candidate.timed("augment", *inputs, timeout_s=timeout_s)
        check_result(value, *inputs, 0.25, "augment of a 480x640 image with 50,000 boxes")
        cand_times.append(seconds)
    ratio = finite_ratio(statistics.median(cand_times), statistics.median(ref_times))
    record.metric("augment_speed_ratio", round(ratio, 3))
    record.metric("augment_reference_s", round(statistics.median(ref_times), 4))
    assert ratio <= MAX_RATIO, (
        f"augment of a 480x640 image with 50,000 boxes took {ratio:.1f}x as long as the reference "
        f"(the limit is {MAX_RATIO:g}x)")
