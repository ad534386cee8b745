"""Hidden check: throughput of preprocess on a batch of 64 images of 480x640 (H x W), relative to the reference.

Every timed call gets images it has never seen, drawn from a seed chosen for this run, and
every timed output is checked (shape and padding of all 64 images, values of 8 of them chosen
at random per run): caching outputs or returning garbage when timed gains nothing. Reference
and candidate alternate on the same inputs, timed by the judge around the whole round trip.
"""

from __future__ import annotations

import secrets
import statistics

import numpy as np
from letterbox_oracle import PAD_ATOL, check_one, geometry

from grader.judgekit import expect_tensor, finite_ratio

BATCH, HEIGHT, WIDTH, SIZE = 64, 480, 640, 224
REPEATS = 5
MAX_RATIO = 10.0
# Each call is stopped at TIMEOUT_RATIO times the reference's time (at least MIN_TIMEOUT_S): a
# Python loop over pixels (30x and more) fails on its first call instead of running for a minute.
TIMEOUT_RATIO = 20.0
MIN_TIMEOUT_S = 3.0
CHECKED_PER_BATCH = 8


def batch(seed: int) -> list[np.ndarray]:
    """64 fresh 480x640 (H x W) RGB images: coarse random structure plus fine noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 200, (BATCH, HEIGHT // 16, WIDTH // 16, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)
    images += rng.integers(0, 56, images.shape, dtype=np.uint8)
    return list(images)


def _checked(value, images: list[np.ndarray], checked: np.ndarray) -> None:
    what = f"preprocess of {BATCH} images of {HEIGHT}x{WIDTH}"
    value = expect_tensor(value, what=what, shape=(BATCH, 3, SIZE, SIZE))  # dtype: output_dtype_shape's job
    got = value.detach().float().numpy()
    new_h, _, top, _ = geometry(HEIGHT, WIDTH, SIZE)
    assert np.isfinite(got).all(), f"{what}: the result has NaN or infinite values"
    assert np.abs(got[:, :, :top]).max() <= PAD_ATOL and np.abs(got[:, :, top + new_h:]).max() <= PAD_ATOL, (
        f"{what}: the padding is not 0"
    )
    for index in checked:
        check_one(got[index].astype(np.float64), images[index], SIZE, what)


def test_speed(candidate, reference, record):
    run_seed = secrets.randbits(31)
    checked = np.random.default_rng(run_seed).choice(BATCH, CHECKED_PER_BATCH, replace=False)
    warmup = batch(run_seed + 1)
    _, ref_warmup = reference.timed("preprocess", warmup)
    value, _ = candidate.timed("preprocess", warmup, timeout_s=max(MIN_TIMEOUT_S, TIMEOUT_RATIO * ref_warmup))
    _checked(value, warmup, checked)

    ref_times: list[float] = []
    cand_times: list[float] = []
    for repeat in range(REPEATS):
        images = batch(run_seed + 2 + repeat)
        ref_times.append(reference.timed("preprocess", images)[1])
        timeout_s = max(MIN_TIMEOUT_S, TIMEOUT_RATIO * statistics.median(ref_times))
        value, seconds = candidate.timed("preprocess", images, timeout_s=timeout_s)
        _checked(value, images, checked)
        cand_times.append(seconds)
    ratio = finite_ratio(statistics.median(cand_times), statistics.median(ref_times))
    record.metric("preprocess_speed_ratio", round(ratio, 3))
    record.metric("preprocess_reference_s", round(statistics.median(ref_times), 4))
    assert ratio <= MAX_RATIO, (
        f"preprocess of {BATCH} images of {HEIGHT}x{WIDTH} took {ratio:.1f}x as long as a straightforward "
        f"implementation (the limit is {MAX_RATIO:g}x)"
    )
