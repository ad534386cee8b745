"""Known bad: fast by skipping the work. Computes the logits of the example input once and
returns them for every image: instant, and wrong."""

from collections.abc import Callable

import torch
from torch import Tensor, nn


def optimize(model: nn.Module, example_input: Tensor) -> Callable[[Tensor], Tensor]:
    with torch.inference_mode():
        logits = model(example_input).clone()

    def run(images: Tensor) -> Tensor:
        return logits.clone()

    return run
