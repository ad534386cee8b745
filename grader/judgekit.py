"""Helpers for challenge authors writing checks (public and hidden).

Checks run in the judge, a trusted pytest process. The candidate's code never
runs here: the ``candidate`` fixture is a proxy whose calls travel to the
sandboxed worker and come back as plain tensors, arrays and numbers.

Messages of hidden checks reach the candidate, so they must describe the
property that failed, never the hidden inputs or expected values. The helpers
below follow that rule: they report what went wrong (shape, dtype, NaN, how far
off and where) without printing arrays.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from grader.judge.paired import MedianInterval, decide, median_interval
from grader.judge.timing import TimingInconclusive
from harness.sandbox import Outcome
from harness.session import CallFailure

__all__ = [
    "CallFailure",
    "MedianInterval",
    "Outcome",
    "TimingInconclusive",
    "decide",
    "expect_close",
    "expect_tensor",
    "median_interval",
]


def expect_tensor(
    value: Any,
    *,
    what: str,
    shape: tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Assert ``value`` is a plain tensor with the given shape, dtype and device; return it."""
    if type(value) is not torch.Tensor:
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise AssertionError(f"{what}: expected dtype {dtype}, got {value.dtype}")
    if device is not None and value.device.type != torch.device(device).type:
        raise AssertionError(f"{what}: expected a tensor on {device}, got one on {value.device}")
    return value


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    what: str,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    check_dtype: bool = True,
) -> None:
    """Assert ``actual`` matches ``expected`` element-wise; NaN never equals anything.

    Shape and dtype must match exactly (a one-element tensor does not broadcast).
    The message says how many elements are off and by how much, not the values.
    """
    tensor = expect_tensor(
        actual, what=what, shape=tuple(expected.shape), dtype=expected.dtype if check_dtype else None
    )
    if tensor.numel() == 0:
        return
    got = tensor.detach().to("cpu", torch.float64)
    want = expected.detach().to("cpu", torch.float64)
    bad_values = ~torch.isfinite(got) & torch.isfinite(want)
    if bool(bad_values.any()):
        kind = "NaN" if bool(torch.isnan(got).any()) else "infinite"
        raise AssertionError(f"{what}: {int(bad_values.sum())} element(s) are {kind}")
    error = (got - want).abs()
    allowed = atol + rtol * want.abs()
    wrong = ~(error <= allowed)  # written so that NaN counts as wrong
    if bool(wrong.any()):
        worst = float(error[wrong].max())
        raise AssertionError(
            f"{what}: {int(wrong.sum())} of {tensor.numel()} elements are off "
            f"(largest error {worst:.3g}, tolerance {atol:g} + {rtol:g}*|expected|)"
        )


def finite_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or +inf when the denominator is not positive."""
    if denominator <= 0 or math.isnan(denominator):
        return math.inf
    return numerator / denominator
