"""Known bad: caches logits by the bytes of the input. Every timed image is new, so the cache
never hits and the model runs unchanged (and hashing costs a little more): fails speed."""

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor, nn


def optimize(model: nn.Module, example_input: Tensor) -> Callable[[Tensor], Tensor]:
    cache: dict[str, Tensor] = {}

    def run(images: Tensor) -> Tensor:
        key = hashlib.sha1(images.detach().cpu().numpy().tobytes()).hexdigest()
        if key not in cache:
            with torch.inference_mode():
                cache[key] = model(images)
        return cache[key].clone()

    return run
