"""Hidden check: coco_map leaves its inputs unchanged (the two dicts and their tensors)."""

from __future__ import annotations

import torch
from cases import dataset


def test_inputs_unchanged(candidate):
    for seed, dtype in ((60, torch.float32), (61, torch.float64)):
        detections, ground_truths = dataset(seed, 30, 4, dtype=dtype)
        _, after = candidate.call_with_inputs("coco_map", {k: v.clone() for k, v in detections.items()},
                                              {k: v.clone() for k, v in ground_truths.items()}, 30, 4)
        assert len(after) == 4, "coco_map: the judge could not read back its inputs"
        for given, back, name in ((detections, after[0], "detections"), (ground_truths, after[1], "ground_truths")):
            assert isinstance(back, dict) and set(back) == set(given), f"coco_map changed the keys of {name}"
            for key, tensor in given.items():
                value = back[key]
                assert (type(value) is torch.Tensor and value.dtype == tensor.dtype
                        and tuple(value.shape) == tuple(tensor.shape) and torch.equal(value, tensor)), (
                    f"coco_map changed {name}['{key}'] (sorted it in place, or changed its values or dtype)")
