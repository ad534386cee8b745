"""Hidden check: coco_map on 5,000 images, relative to the reference (a straightforward implementation).

Every timed call gets a data set it has never seen, drawn from a seed chosen for this run, and
every timed output is compared with the reference's output for the same input, within
SPEED_TOLERANCE (the reference agrees with COCOeval to 1e-15 on the other checks; COCOeval takes
too long to run on every timed input, and these large sets do not keep IoUs off the thresholds, so
float32 arithmetic may flip a match or two: exactness is the other checks' job). Reference and
candidate alternate, timed by the judge around the round trip.
"""

from __future__ import annotations

import secrets
import statistics

import torch
from cases import large_dataset
from compare import check_result

from grader.judgekit import finite_ratio

IMAGES, CLASSES = 5000, 20
WARMUP_IMAGES = 500
REPEATS = 3
SPEED_TOLERANCE = 0.01
MAX_RATIO = 15.0
TIMEOUT_RATIO = 20.0  # a call is stopped at this many times the reference's time (at least MIN_TIMEOUT_S)
MIN_TIMEOUT_S = 10.0


def workload(seed: int, images: int = IMAGES):
    return large_dataset(seed, images, CLASSES)


def expected_from(reference_value) -> dict:
    return {key: (value.to(torch.float64) if isinstance(value, torch.Tensor) else float(value))
            for key, value in reference_value.items()}


def test_speed(candidate, reference, record):
    run_seed = secrets.randbits(31)
    what = f"coco_map on {IMAGES} images"
    warmup = workload(run_seed, WARMUP_IMAGES)  # imports and caches; a tenth of the size is enough
    expected, ref_warmup = reference.timed("coco_map", *warmup, WARMUP_IMAGES, CLASSES)
    value, _ = candidate.timed("coco_map", *warmup, WARMUP_IMAGES, CLASSES,
                               timeout_s=max(MIN_TIMEOUT_S, 10 * TIMEOUT_RATIO * ref_warmup))
    check_result(value, expected_from(expected), CLASSES, f"coco_map on {WARMUP_IMAGES} images",
                 tolerance=SPEED_TOLERANCE)

    ref_times: list[float] = []
    cand_times: list[float] = []
    for repeat in range(REPEATS):
        inputs = workload(run_seed + 1 + repeat)
        expected, seconds = reference.timed("coco_map", *inputs, IMAGES, CLASSES)
        ref_times.append(seconds)
        timeout_s = max(MIN_TIMEOUT_S, TIMEOUT_RATIO * statistics.median(ref_times))
        value, seconds = candidate.timed("coco_map", *inputs, IMAGES, CLASSES, timeout_s=timeout_s)
        check_result(value, expected_from(expected), CLASSES, what, tolerance=SPEED_TOLERANCE)
        cand_times.append(seconds)
    ratio = finite_ratio(statistics.median(cand_times), statistics.median(ref_times))
    record.metric("coco_map_speed_ratio", round(ratio, 3))
    record.metric("coco_map_reference_s", round(statistics.median(ref_times), 4))
    assert ratio <= MAX_RATIO, (
        f"{what} took {ratio:.1f}x as long as a straightforward implementation (the limit is {MAX_RATIO:g}x)")
