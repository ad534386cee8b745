"""Known bad: returns the model unchanged. Right logits, no speed-up: fails the speed check."""

from collections.abc import Callable

from torch import Tensor, nn


def optimize(model: nn.Module, example_input: Tensor) -> Callable[[Tensor], Tensor]:
    return model
