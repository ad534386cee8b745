"""Hidden check: neither function may modify the tensors it is given."""

from __future__ import annotations

import torch


def _boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    corner = (torch.rand(n, 2, generator=gen) - 0.5) * 2000
    size = 1 + 300 * torch.rand(n, 2, generator=gen)
    return torch.cat([corner, corner + size], dim=1)


def _unchanged(after, before: torch.Tensor) -> bool:
    return (
        type(after) is torch.Tensor
        and after.dtype == before.dtype
        and tuple(after.shape) == tuple(before.shape)
        and torch.equal(after.cpu(), before)
    )


def test_inputs_unchanged(candidate):
    gen = torch.Generator().manual_seed(5)
    for dtype in (torch.float32, torch.float64):
        boxes1, boxes2 = _boxes(gen, 60).to(dtype), _boxes(gen, 45).to(dtype)
        _, after = candidate.call_with_inputs("box_iou", boxes1.clone(), boxes2.clone())
        assert len(after) == 2, "box_iou: the judge could not read back its inputs"
        assert _unchanged(after[0], boxes1), f"box_iou changed its input boxes1 ({dtype})"
        assert _unchanged(after[1], boxes2), f"box_iou changed its input boxes2 ({dtype})"

        boxes = torch.cat([boxes1, boxes1[:20] + 3]).to(dtype)  # some overlaps to suppress
        scores = torch.rand(len(boxes), generator=gen).to(dtype)
        _, after = candidate.call_with_inputs("nms", boxes.clone(), scores.clone(), 0.5)
        assert len(after) == 3, "nms: the judge could not read back its inputs"
        assert _unchanged(after[0], boxes), f"nms changed its input boxes ({dtype})"
        assert _unchanged(after[1], scores), f"nms changed its input scores ({dtype})"
