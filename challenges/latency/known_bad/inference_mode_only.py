"""Known bad: the one-line fix. torch.inference_mode() saves autograd's bookkeeping, a real
gain, but the float64 arithmetic, the Python loop and the host round trips remain: far
below 0.6 times the reference's speed-up."""

from collections.abc import Callable

import torch
from torch import Tensor, nn


def optimize(model: nn.Module, example_input: Tensor) -> Callable[[Tensor], Tensor]:
    def run(images: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(images)

    return run
