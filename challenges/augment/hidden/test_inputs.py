"""Hidden check: augment leaves its inputs unchanged (image tensor or array, boxes, labels, params)."""

from __future__ import annotations

import numpy as np
import torch
from cases import random_case


def _same_tensor(after, before: torch.Tensor) -> bool:
    return (type(after) is torch.Tensor and after.dtype == before.dtype
            and tuple(after.shape) == tuple(before.shape) and torch.equal(after.cpu(), before))


def test_inputs_unchanged(candidate):
    for seed, flip, rotate in ((80, True, 0), (81, True, 1), (82, False, 3)):
        image, boxes, labels, params = random_case(seed, flip=flip, rotate=rotate)
        for as_numpy in (False, True):
            given = image.permute(1, 2, 0).contiguous().numpy() if as_numpy else image
            kept = dict(params)
            _, after = candidate.call_with_inputs("augment", given.copy() if as_numpy else given.clone(),
                                                  boxes.clone(), labels.clone(), dict(params))
            assert len(after) == 4, "augment: the judge could not read back its inputs"
            if as_numpy:
                assert (type(after[0]) is np.ndarray and after[0].dtype == given.dtype
                        and after[0].shape == given.shape and np.array_equal(after[0], given)), (
                    "augment changed the numpy image it was given")
            else:
                assert _same_tensor(after[0], image), "augment changed the image tensor it was given"
            assert _same_tensor(after[1], boxes), "augment changed the boxes it was given"
            assert _same_tensor(after[2], labels), "augment changed the labels it was given"
            assert isinstance(after[3], dict) and {k: after[3].get(k) for k in kept} == kept, (
                "augment changed the params dict it was given")
