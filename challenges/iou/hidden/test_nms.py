"""Hidden checks for nms: agreement with torchvision, strict threshold, score order, empty input.

Agreement with ``torchvision.ops.nms`` is checked against ``nms_oracle``, greedy NMS in
float64: on the random detections below (distinct scores, no IoU within THRESHOLD_MARGIN of
the threshold) the two keep the same boxes in the same order, which
tests/challenges/test_iou_nms_oracle.py proves against torchvision itself. The judge leaves
torchvision unimported: its ops pull in ``torch._dynamo``, about 1.8 CPU seconds per grading.
"""

from __future__ import annotations

import torch

from grader.judgekit import expect_tensor

THRESHOLD_MARGIN = 1e-4  # random sets keep every IoU at least this far from the threshold


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


def nms_oracle(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS in float64: from the highest score down, keep a box unless its IoU with a kept box
    is above ``threshold``; the kept indices (int64) in decreasing score order. Scores must be distinct."""
    iou = iou_oracle(boxes, boxes)
    order = torch.argsort(scores.detach().to("cpu", torch.float64), descending=True)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep: list[int] = []
    for index in order.tolist():
        if not suppressed[index]:
            keep.append(index)
            suppressed |= iou[index] > threshold
    return torch.tensor(keep, dtype=torch.int64)


def random_detections(
    gen: torch.Generator, k: int, threshold: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """k clustered boxes in [0, 1000]^2 with distinct scores, no IoU close to the threshold."""
    while True:
        clusters = torch.rand(max(1, k // 8), 2, generator=gen, dtype=torch.float64) * 1000
        centre = clusters[torch.randint(len(clusters), (k,), generator=gen)]
        size = 20 + 80 * torch.rand(k, 2, generator=gen, dtype=torch.float64)
        centre = centre + (torch.rand(k, 2, generator=gen, dtype=torch.float64) - 0.5) * size
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1).to(dtype)
        scores = ((torch.randperm(k, generator=gen).to(torch.float64) + 1) / (k + 1)).to(dtype)
        iou = iou_oracle(boxes, boxes)
        off_diagonal = ~torch.eye(k, dtype=torch.bool)
        if not bool(((iou - threshold).abs() < THRESHOLD_MARGIN)[off_diagonal].any()):
            return boxes, scores


def as_indices(value, what: str) -> torch.Tensor:
    """Accept any 1-D integer tensor (the dtype itself is checked in test_empty_and_dtype)."""
    assert type(value) is torch.Tensor, f"{what}: nms must return a torch.Tensor of indices"
    assert value.dim() == 1, f"{what}: nms must return a 1-D tensor of indices"
    assert not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool, (
        f"{what}: nms must return integer indices"
    )
    return value.to("cpu", torch.int64)


def expect_same_keep(value, expected: torch.Tensor, what: str) -> None:
    got = as_indices(value, what)
    assert set(got.tolist()) == set(expected.tolist()), (
        f"{what}: nms kept a different set of boxes than greedy NMS"
    )
    assert len(got) == len(expected), f"{what}: nms returned a kept box more than once"
    assert torch.equal(got, expected), (
        f"{what}: nms returned the kept indices in the wrong order (decreasing score expected)"
    )


def cuda_usable(reference) -> bool:
    """True when the judge and the workers can use CUDA (the reference returns a CUDA tensor)."""
    if not torch.cuda.is_available():
        return False
    probe = torch.tensor([[0.0, 0.0, 1.0, 1.0]], device="cuda")
    value = reference.nms(probe, torch.ones(1, device="cuda"), 0.5)
    return isinstance(value, torch.Tensor) and value.device.type == "cuda"


def test_matches_torchvision(candidate):
    gen = torch.Generator().manual_seed(2024)
    for k in (1, 2, 10, 100, 600):
        for threshold in (0.3, 0.5, 0.7):
            for dtype in (torch.float32, torch.float64):
                if dtype == torch.float64 and k not in (10, 600):
                    continue
                boxes, scores = random_detections(gen, k, threshold, dtype)
                expected = nms_oracle(boxes, scores, threshold)
                value = candidate.nms(boxes, scores, threshold)
                expect_same_keep(value, expected, f"nms of {k} random {dtype} boxes")


def test_threshold_is_strict(candidate):
    wide, unit = [0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]  # IoU exactly 1/2
    long = [0.0, 0.0, 4.0, 1.0]  # IoU with unit exactly 1/4
    cases = [
        # boxes, scores, threshold, expected keep, what a wrong answer means
        ([wide, unit], [0.9, 0.8], 0.5, [0, 1],
         "nms suppressed a box whose IoU with a kept box equals the threshold"),
        ([long, unit], [0.3, 0.6], 0.25, [1, 0],
         "nms suppressed a box whose IoU with a kept box equals the threshold"),
        ([unit, unit], [0.4, 0.7], 1.0, [1, 0],
         "nms suppressed an identical box at threshold 1.0 (IoU 1 is not greater than 1)"),
        ([unit, [1.0, 0.0, 2.0, 1.0]], [0.5, 0.6], 0.0, [1, 0],
         "nms suppressed a touching box (IoU 0) at threshold 0"),
        ([unit, [3.0, 3.0, 4.0, 4.0]], [0.6, 0.5], 0.0, [0, 1],
         "nms suppressed a disjoint box (IoU 0) at threshold 0"),
        ([wide, unit], [0.9, 0.8], 0.49, [0],
         "nms kept a box whose IoU with a kept box is above the threshold"),
        ([unit, [0.5, 0.0, 1.5, 1.0]], [0.6, 0.5], 0.0, [0],
         "nms kept an overlapping box at threshold 0"),
        ([long, unit], [0.3, 0.6], 0.2499, [1],
         "nms kept a box whose IoU with a kept box is above the threshold"),
    ]
    for dtype in (torch.float32, torch.float64):
        for boxes, scores, threshold, keep, message in cases:
            value = candidate.nms(torch.tensor(boxes, dtype=dtype),
                                  torch.tensor(scores, dtype=dtype), threshold)
            got = as_indices(value, "nms with a threshold")
            # which boxes are kept, in any order: the order is nms_score_order's job
            assert sorted(got.tolist()) == sorted(keep), f"{message} ({dtype})"


def test_decreasing_score_order(candidate):
    apart = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(5)]
    cases = [
        (apart, [0.1, 0.9, 0.5, 0.7, 0.3], [1, 3, 2, 4, 0],
         "nms must return the kept indices in decreasing score order"),
        (apart[:3], [-1.0, -3.0, -2.0], [0, 2, 1],
         "nms must return the kept indices in decreasing score order (negative scores)"),
        (apart[:4], [5.0, 250.0, 1e4, 0.5], [2, 1, 0, 3],
         "nms must return the kept indices in decreasing score order (scores above 1)"),
        # box 1 has the best score and suppresses box 0; box 2 overlaps box 0 (IoU 0.54) but
        # not box 1 (IoU 0.25), so it must be kept
        ([[0.0, 0.0, 10.0, 10.0], [-3.0, 0.0, 7.0, 10.0], [3.0, 0.0, 13.0, 10.0]],
         [0.5, 0.9, 0.7], [1, 2],
         "nms must visit boxes from the highest score down: a box suppressed by a "
         "higher-scored box cannot suppress others"),
    ]
    for boxes, scores, keep, message in cases:
        value = candidate.nms(torch.tensor(boxes), torch.tensor(scores), 0.5)
        got = as_indices(value, "nms")
        assert got.tolist() == keep, message


def test_empty_and_dtype(candidate, reference):
    for dtype in (torch.float32, torch.float64):
        value = candidate.nms(torch.zeros(0, 4, dtype=dtype), torch.zeros(0, dtype=dtype), 0.5)
        expect_tensor(value, what=f"nms of no boxes ({dtype})", shape=(0,), dtype=torch.int64,
                      device="cpu")
        value = candidate.nms(torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=dtype),
                              torch.tensor([0.5], dtype=dtype), 0.5)
        value = expect_tensor(value, what=f"nms of one box ({dtype})", shape=(1,),
                              dtype=torch.int64, device="cpu")
        assert value.tolist() == [0], f"nms of one box must keep it ({dtype})"
        boxes, scores = random_detections(torch.Generator().manual_seed(7), 50, 0.5, dtype)
        value = candidate.nms(boxes, scores, 0.5)
        expect_tensor(value, what=f"nms of random {dtype} boxes", dtype=torch.int64, device="cpu")
    if cuda_usable(reference):
        boxes, scores = random_detections(torch.Generator().manual_seed(8), 50, 0.5, torch.float32)
        value = candidate.nms(boxes.cuda(), scores.cuda(), 0.5)
        expect_tensor(value, what="nms of CUDA boxes", dtype=torch.int64, device="cuda")
