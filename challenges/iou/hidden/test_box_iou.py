"""Hidden checks for box_iou: edge cases, degenerate boxes, random boxes, dtype and device, speed.

Expected values come from a float64 oracle written here, in the judge, so the
reference solution is checked by the same code as every candidate.

Accuracy is checked by the accuracy checks only (edge cases, degenerate and random boxes,
and the speed check's outputs), all through ``expect_iou``: the dtype's rounding tolerance,
plus the common guard of a small epsilon in the union (``inter / (union + 1e-7)`` as in
YOLO-family code, ``union.clamp(min=1e-6)`` as in mmdetection), which lowers an IoU by at
most IoU * eps / (union + eps). ``box_iou_dtype_device`` checks the dtype and the device,
nothing else.
"""

from __future__ import annotations

import secrets

import torch

from grader.judgekit import TimingInconclusive, decide, expect_tensor, median_interval

F32 = {"rtol": 1e-4, "atol": 1e-5}
F64 = {"rtol": 1e-7, "atol": 1e-9}
F16 = {"rtol": 2e-2, "atol": 5e-3}
TOLERANCES = {torch.float64: F64, torch.float32: F32, torch.float16: F16}
# The largest epsilon a sound solution may add to (or clamp) the union. The float64 tolerance
# stays tight, so arithmetic done in float32 for float64 inputs still fails (it is off by up
# to 1e-3 relative on small boxes far from the origin).
UNION_EPS_MAX = 1e-6
SPEED_N = 2048
SPEED_MAX_RATIO = 10.0
SPEED_MIN_PAIRS = 6  # the fewest pairs that give a 95% interval on the median
SPEED_MAX_PAIRS = 15
SPEED_CONFIDENCE = 0.95


def iou_oracle(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU in float64 on the CPU; 0 where the union is 0."""
    a = boxes1.detach().to("cpu", torch.float64)
    b = boxes2.detach().to("cpu", torch.float64)
    top_left = torch.max(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(inter))


def union_oracle(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise area of the union in float64 on the CPU."""
    a = boxes1.detach().to("cpu", torch.float64)
    b = boxes2.detach().to("cpu", torch.float64)
    inter = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2]))
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    return area_a[:, None] + area_b[None, :] - inter.clamp(min=0).prod(dim=-1)


def expect_iou(
    value, expected: torch.Tensor, union: torch.Tensor, *, what: str, dtype: torch.dtype
) -> torch.Tensor:
    """Assert ``value`` is an IoU tensor of ``expected``'s shape matching it within the tolerance.

    Accepted: ``expected`` (exact, float64) within the dtype's tolerance, or anything between
    it and inter / (union + UNION_EPS_MAX) (an epsilon guard in the union), within the same
    tolerance. Any floating dtype is accepted here (the dtype is box_iou_dtype_device's job).
    """
    value = expect_tensor(value, what=what, shape=tuple(expected.shape))
    if value.numel() == 0:
        return value
    tol = TOLERANCES[dtype]
    got = value.detach().to("cpu", torch.float64)
    high = expected.detach().to("cpu", torch.float64)
    low = high * union / (union + UNION_EPS_MAX)  # inter / (union + eps); 0 where the union is 0
    not_finite = ~torch.isfinite(got)
    if bool(not_finite.any()):
        kind = "NaN" if bool(torch.isnan(got).any()) else "infinite"
        raise AssertionError(f"{what}: {int(not_finite.sum())} element(s) are {kind}")
    error = torch.maximum(got - high, low - got).clamp(min=0)
    wrong = error > tol["atol"] + tol["rtol"] * high.abs()
    if bool(wrong.any()):
        raise AssertionError(
            f"{what}: {int(wrong.sum())} of {got.numel()} elements are off (largest error "
            f"{float(error[wrong].max()):.3g}, tolerance {tol['atol']:g} + {tol['rtol']:g}*|expected|, "
            f"and an epsilon of up to {UNION_EPS_MAX:g} in the union)"
        )
    return value


def expect_pairwise_iou(value, boxes1: torch.Tensor, boxes2: torch.Tensor, *, what: str) -> torch.Tensor:
    """Assert ``value`` is box_iou(boxes1, boxes2) within the tolerance of the boxes' dtype."""
    return expect_iou(value, iou_oracle(boxes1, boxes2), union_oracle(boxes1, boxes2), what=what,
                      dtype=boxes1.dtype)


def random_boxes(gen: torch.Generator, n: int, clusters: torch.Tensor) -> torch.Tensor:
    """n valid float64 boxes around clusters [C, 3] of (x, y, typical size)."""
    which = clusters[torch.randint(len(clusters), (n,), generator=gen)]
    size = which[:, 2:] * 2.0 ** (2.0 * torch.rand(n, 1, generator=gen, dtype=torch.float64) - 1.0)
    jitter = torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5
    centre = which[:, :2] + jitter * size
    wh = size * (0.5 + torch.rand(n, 2, generator=gen, dtype=torch.float64))
    return torch.cat([centre - wh / 2, centre + wh / 2], dim=1)


def random_pair(seed: int, n: int, m: int, spread: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of clustered boxes over about [-spread, spread]^2, typical sizes 1 to 1000.

    Some rows of boxes2 repeat rows of boxes1, so that IoU 1 occurs too.
    """
    gen = torch.Generator().manual_seed(seed)
    count = max(2, (n + m) // 8)
    xy = (2.0 * torch.rand(count, 2, generator=gen, dtype=torch.float64) - 1.0) * spread
    size = 10.0 ** (3.0 * torch.rand(count, 1, generator=gen, dtype=torch.float64))
    clusters = torch.cat([xy, size], dim=1)
    boxes1 = random_boxes(gen, n, clusters)
    boxes2 = random_boxes(gen, m, clusters)
    repeats = min(n, m) // 10
    boxes2[:repeats] = boxes1[torch.randperm(n, generator=gen)[:repeats]]
    return boxes1, boxes2


def cuda_usable(reference) -> bool:
    """True when the judge and the workers can use CUDA (the reference returns a CUDA tensor)."""
    if not torch.cuda.is_available():
        return False
    probe = torch.tensor([[0.0, 0.0, 1.0, 1.0]], device="cuda")
    value = reference.box_iou(probe, probe)
    return isinstance(value, torch.Tensor) and value.device.type == "cuda"


# name, box from boxes1, box from boxes2, exact IoU
EDGE_CASES = [
    ("two identical boxes", [0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ("two identical boxes with fractional coordinates",
     [1.5, 2.25, 7.75, 9.5], [1.5, 2.25, 7.75, 9.5], 1.0),
    ("a box nested inside another", [0, 0, 10, 10], [2, 2, 4, 4], 0.04),
    ("a box containing another", [2, 3, 6, 5], [0, 0, 10, 10], 0.08),
    ("two partly overlapping boxes", [0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),
    ("two boxes overlapping in a cross", [0, 4, 10, 6], [4, 0, 6, 10], 1 / 9),
    ("two boxes touching along an edge", [0, 0, 1, 1], [1, 0, 2, 1], 0.0),
    ("two boxes touching at a corner", [0, 0, 1, 1], [1, 1, 2, 2], 0.0),
    ("two boxes apart in both x and y", [0, 0, 1, 1], [5, 5, 6, 6], 0.0),
    ("two boxes apart in x only", [0, 0, 1, 10], [3, 0, 4, 10], 0.0),
    ("two boxes apart in y only", [0, 0, 10, 1], [0, 4, 10, 6], 0.0),
    ("two boxes with negative coordinates", [-10, -10, -2, -2], [-6, -6, 2, 2], 1 / 7),
    ("two boxes with large coordinates",
     [1e4, 1e4, 1.2e4, 1.1e4], [1.1e4, 1.05e4, 1.3e4, 1.2e4], 1 / 9),
    ("two boxes of very different sizes", [0, 0, 1000, 1000], [10, 10, 11, 11], 1e-6),
]

# Checked in float64 only: boxes a few tenths wide, tens of thousands from the origin. float64
# keeps their sizes to about 1e-11; rounding the coordinates to float32 moves each edge by up
# to 0.001, which changes the IoU by about 1%.
PRECISION_CASES = [
    ("two small boxes far from the origin",
     [12345.1, -23456.3, 12345.6, -23455.9], [12345.3, -23456.2, 12345.8, -23455.8], 9 / 31),
    ("two thin boxes far from the origin",
     [-31000.25, 17000.5, -30990.25, 17000.7], [-30995.25, 17000.6, -30985.25, 17000.8], 1 / 7),
]

# name, box from boxes1, box from boxes2: every pair has IoU 0
DEGENERATE_CASES = [
    ("two identical point boxes", [3, 3, 3, 3], [3, 3, 3, 3]),
    ("two identical zero-width boxes", [2, 0, 2, 5], [2, 0, 2, 5]),
    ("two overlapping zero-height boxes", [0, 1, 5, 1], [2, 1, 7, 1]),
    ("two distant point boxes", [-4, 7, -4, 7], [9, -2, 9, -2]),
    ("a point box inside a box", [1, 1, 1, 1], [0, 0, 2, 2]),
    ("a zero-width box across a box", [1, -1, 1, 3], [0, 0, 2, 2]),
]


def _check_named_pairs(value, cases, boxes1, boxes2, dtype) -> None:
    """Each diagonal pair against the exact IoU stated in its case (a check of the oracle too)."""
    union = union_oracle(boxes1, boxes2)
    for index, case in enumerate(cases):
        name, expected = case[0], (case[3] if len(case) > 3 else 0.0)
        expect_iou(value[index:index + 1, index:index + 1],
                   torch.tensor([[expected]], dtype=torch.float64),
                   union[index:index + 1, index:index + 1], what=f"IoU of {name} ({dtype})", dtype=dtype)


def test_edge_cases(candidate):
    for dtype in (torch.float64, torch.float32):
        boxes1 = torch.tensor([case[1] for case in EDGE_CASES], dtype=dtype)
        boxes2 = torch.tensor([case[2] for case in EDGE_CASES], dtype=dtype)
        value = expect_tensor(candidate.box_iou(boxes1, boxes2), what=f"box_iou ({dtype})",
                              shape=(len(EDGE_CASES), len(EDGE_CASES)))
        _check_named_pairs(value, EDGE_CASES, boxes1, boxes2, dtype)
        expect_pairwise_iou(value, boxes1, boxes2, what=f"IoU between all pairs of edge-case boxes ({dtype})")
        expect_pairwise_iou(candidate.box_iou(boxes2, boxes1), boxes2, boxes1,
                            what=f"IoU with boxes1 and boxes2 swapped ({dtype})")

    boxes1 = torch.tensor([case[1] for case in PRECISION_CASES], dtype=torch.float64)
    boxes2 = torch.tensor([case[2] for case in PRECISION_CASES], dtype=torch.float64)
    value = expect_tensor(candidate.box_iou(boxes1, boxes2), what="box_iou (torch.float64)",
                          shape=(len(PRECISION_CASES), len(PRECISION_CASES)))
    _check_named_pairs(value, PRECISION_CASES, boxes1, boxes2, torch.float64)

    boxes = torch.tensor([case[1] for case in EDGE_CASES[:3]], dtype=torch.float32)
    none = torch.zeros(0, 4, dtype=torch.float32)
    expect_tensor(candidate.box_iou(none, boxes), what="box_iou of an empty boxes1", shape=(0, 3))
    expect_tensor(candidate.box_iou(boxes, none), what="box_iou of an empty boxes2", shape=(3, 0))
    expect_tensor(candidate.box_iou(none, none), what="box_iou of two empty inputs", shape=(0, 0))


def test_degenerate_boxes(candidate):
    for dtype in (torch.float64, torch.float32):
        boxes1 = torch.tensor([case[1] for case in DEGENERATE_CASES], dtype=dtype)
        boxes2 = torch.tensor([case[2] for case in DEGENERATE_CASES], dtype=dtype)
        value = expect_tensor(candidate.box_iou(boxes1, boxes2), what=f"box_iou ({dtype})",
                              shape=(len(DEGENERATE_CASES), len(DEGENERATE_CASES)))
        assert not bool(torch.isnan(value).any()), "IoU of two degenerate boxes is NaN"
        assert bool(torch.isfinite(value).all()), "IoU of two degenerate boxes is infinite"
        _check_named_pairs(value, DEGENERATE_CASES, boxes1, boxes2, dtype)
        expect_pairwise_iou(value, boxes1, boxes2, what=f"IoU between all pairs of degenerate boxes ({dtype})")


def half_pair(seed: int, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float16 boxes with small coordinates, so that areas stay far below float16's maximum (65504)."""
    boxes1, boxes2 = random_pair(seed, n, m, spread=1e3)
    return (boxes1 / 20).clamp(-100, 100).half(), (boxes2 / 20).clamp(-100, 100).half()


def test_random_boxes(candidate, reference):
    for seed, n, m in ((11, 300, 200), (12, 1, 157), (13, 64, 1)):
        boxes1, boxes2 = random_pair(seed, n, m)
        expect_pairwise_iou(candidate.box_iou(boxes1, boxes2), boxes1, boxes2,
                            what="IoU of random float64 boxes")
    for seed, n, m in ((21, 257, 311), (22, 100, 100)):
        boxes1, boxes2 = (b.float() for b in random_pair(seed, n, m))
        expect_pairwise_iou(candidate.box_iou(boxes1, boxes2), boxes1, boxes2,
                            what="IoU of random float32 boxes")
    half1, half2 = half_pair(32, 30, 20)
    expect_pairwise_iou(candidate.box_iou(half1, half2), half1, half2, what="IoU of random float16 boxes")
    if cuda_usable(reference):
        boxes1, boxes2 = (b.float().cuda() for b in random_pair(31, 40, 50, spread=1e3))
        expect_pairwise_iou(candidate.box_iou(boxes1, boxes2), boxes1, boxes2,
                            what="IoU of random CUDA boxes")


def test_dtype_and_device(candidate, reference):
    """The result's dtype and device only: its values are the accuracy checks' job."""
    boxes1, boxes2 = random_pair(31, 40, 50, spread=1e3)
    half1, half2 = half_pair(32, 30, 20)
    inputs = [(boxes1.float(), boxes2.float()), (boxes1, boxes2), (half1, half2)]
    if cuda_usable(reference):
        inputs.append((boxes1.float().cuda(), boxes2.float().cuda()))
    for a, b in inputs:
        where = "CUDA" if a.is_cuda else "CPU"
        expect_tensor(candidate.box_iou(a, b), what=f"box_iou of {a.dtype} boxes on the {where}",
                      dtype=a.dtype, device=a.device.type)


def _checked_speed_output(value, boxes1: torch.Tensor, boxes2: torch.Tensor, rows: torch.Tensor) -> None:
    value = expect_tensor(value, what=f"box_iou of {SPEED_N}x{SPEED_N} boxes",
                          shape=(SPEED_N, SPEED_N))  # the dtype is box_iou_dtype_device's job
    assert bool(torch.isfinite(value[rows]).all()), (
        f"box_iou of {SPEED_N}x{SPEED_N} boxes has NaN or infinite values"
    )
    expect_pairwise_iou(value[rows], boxes1[rows], boxes2, what=f"IoU of {SPEED_N}x{SPEED_N} random boxes")


def test_speed(candidate, reference, record):
    # Every call gets boxes it has never seen, drawn from a seed chosen for this run, and
    # every timed output is checked: caching outputs or returning garbage when timed gains
    # nothing. Reference and candidate take turns on the same inputs, timed by the judge,
    # the candidate frozen while the reference runs. Each pair gives one ratio; the median
    # ratio's confidence interval decides (grader.judge.paired): a busy machine slows both
    # calls of a pair alike, and a pair it disturbs more cannot drag the median.
    run_seed = secrets.randbits(31)
    rows = torch.randperm(SPEED_N, generator=torch.Generator().manual_seed(run_seed))[:16]
    warmup1, warmup2 = (b.float() for b in random_pair(run_seed + 1, SPEED_N, SPEED_N))
    # Untimed and small: a box_iou that hung in an earlier check fails here at once, without
    # waiting for the machine's timing lock.
    candidate.box_iou(warmup1[:8], warmup2[:8])
    with candidate.frozen() as frozen:
        ref_warmup = reference.timed("box_iou", warmup1, warmup2)[1]
    record.metric("candidate_while_reference_timed", frozen)
    value, _ = candidate.timed("box_iou", warmup1, warmup2, timeout_s=max(5.0, 30 * ref_warmup))
    _checked_speed_output(value, warmup1, warmup2, rows)

    fractions: list[float] = []  # reference time / candidate time, per pair
    interval = median_interval([], SPEED_CONFIDENCE)
    for repeat in range(SPEED_MAX_PAIRS):
        boxes1, boxes2 = (b.float() for b in random_pair(run_seed + 2 + repeat, SPEED_N, SPEED_N))
        timeout_s = max(5.0, 30 * ref_warmup)
        if repeat % 2:
            value, cand_s = candidate.timed("box_iou", boxes1, boxes2, timeout_s=timeout_s)
        with candidate.frozen():
            ref_s = reference.timed("box_iou", boxes1, boxes2)[1]
        if not repeat % 2:
            value, cand_s = candidate.timed("box_iou", boxes1, boxes2, timeout_s=timeout_s)
        _checked_speed_output(value, boxes1, boxes2, rows)
        fractions.append(ref_s / max(cand_s, 1e-9))
        interval = median_interval(fractions, SPEED_CONFIDENCE)
        if len(fractions) >= SPEED_MIN_PAIRS and decide(interval, 1 / SPEED_MAX_RATIO) != "inconclusive":
            break
    ratio = 1 / interval.median
    record.metric("box_iou_speed_ratio", round(ratio, 3))
    record.metric("box_iou_speed_ratio_interval", f"{1 / interval.high:.3g} to {1 / interval.low:.3g}"
                  if interval.low > 0 else "unbounded")
    record.metric("box_iou_speed_pairs", len(fractions))
    described = (
        f"box_iou on {SPEED_N}x{SPEED_N} boxes took {ratio:.1f}x as long as a straightforward vectorised "
        f"implementation (median of {len(fractions)} calls side by side; the limit is {SPEED_MAX_RATIO:g}x)"
    )
    decision = decide(interval, 1 / SPEED_MAX_RATIO)
    if decision == "inconclusive":
        raise TimingInconclusive(f"timing inconclusive: {described}, but the calls varied too much to be sure")
    assert decision == "pass", described
