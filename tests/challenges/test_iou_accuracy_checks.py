"""The `iou` checks test what their names say: sound guards pass, lost precision fails.

- An epsilon of up to 1e-6 in the union (YOLO-family code adds 1e-7, mmdetection clamps at
  1e-6) passes every accuracy check and the dtype gate.
- Arithmetic done in float32 for float64 boxes passes the dtype gate (its dtype is right) and
  fails the accuracy checks, the edge-case gate included.
- `box_iou_dtype_device` looks at the dtype and the device only.

The hidden check functions are called here directly, with a stand-in for the `candidate`
fixture that calls a local function: what is under test is the checks' arithmetic (the
sandbox and the channel are tested elsewhere; `cvgrade validate iou` grades the shipped
known-good and known-bad solutions for real).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import Tensor

from tests.challenges.files import load_file

HIDDEN = Path(__file__).resolve().parents[2] / "challenges" / "iou" / "hidden"

BoxIou = Callable[[Tensor, Tensor], Tensor]


def _load_checks() -> ModuleType:
    return load_file("iou_hidden_box_iou_under_test", HIDDEN / "test_box_iou.py")


checks = _load_checks()


class LocalSolution:
    """What a check sees of a solution: ``box_iou`` called with the check's tensors."""

    def __init__(self, box_iou: BoxIou) -> None:
        self.box_iou = box_iou


def _parts(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union of every pair, in the boxes' dtype."""
    inter = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = inter.prod(dim=2)
    union = (a[:, 2:] - a[:, :2]).prod(dim=1)[:, None] + (b[:, 2:] - b[:, :2]).prod(dim=1)[None, :] - inter
    return inter, union


def exact(a: Tensor, b: Tensor) -> Tensor:
    inter, union = _parts(a, b)
    return torch.where(union > 0, inter / union, torch.zeros_like(union))


def eps_added(eps: float) -> BoxIou:
    def box_iou(a: Tensor, b: Tensor) -> Tensor:
        inter, union = _parts(a, b)
        return inter / (union + eps)
    return box_iou


def union_clamped(eps: float) -> BoxIou:
    def box_iou(a: Tensor, b: Tensor) -> Tensor:
        inter, union = _parts(a, b)
        return inter / union.clamp(min=eps)
    return box_iou


def union_max_tensor(a: Tensor, b: Tensor) -> Tensor:
    """mmdetection's form: torch.max(union, union.new_tensor([1e-6]))."""
    inter, union = _parts(a, b)
    return inter / torch.max(union, union.new_tensor([1e-6]))


def float32_arithmetic(a: Tensor, b: Tensor) -> Tensor:
    return exact(a.float(), b.float()).to(a.dtype)


def float64_out(a: Tensor, b: Tensor) -> Tensor:
    return exact(a.double(), b.double())


def right_dtype_wrong_values(a: Tensor, b: Tensor) -> Tensor:
    return torch.full((len(a), len(b)), 0.5, dtype=a.dtype, device=a.device)


ACCURACY_CHECKS = ("test_edge_cases", "test_degenerate_boxes", "test_random_boxes")


def run(check: str, box_iou: BoxIou) -> None:
    function = getattr(checks, check)
    solution = LocalSolution(box_iou)
    if check in ("test_random_boxes", "test_dtype_and_device"):
        function(solution, LocalSolution(exact))
    else:
        function(solution)


@pytest.mark.parametrize("box_iou", [
    pytest.param(exact, id="exact (torch.where on the union)"),
    pytest.param(eps_added(1e-7), id="YOLO: inter / (union + 1e-7)"),
    pytest.param(eps_added(1e-6), id="inter / (union + 1e-6)"),
    pytest.param(union_clamped(1e-6), id="union.clamp(min=1e-6)"),
    pytest.param(union_max_tensor, id="mmdetection: torch.max(union, 1e-6)"),
])
@pytest.mark.parametrize("check", [*ACCURACY_CHECKS, "test_dtype_and_device"])
def test_a_sound_epsilon_guard_passes_the_accuracy_checks_and_the_dtype_gate(check: str, box_iou: BoxIou) -> None:
    run(check, box_iou)


@pytest.mark.parametrize("check", ["test_edge_cases", "test_random_boxes"])
def test_float32_arithmetic_on_float64_boxes_fails_the_accuracy_checks(check: str) -> None:
    with pytest.raises(AssertionError, match=r"float64.*elements are off"):
        run(check, float32_arithmetic)


def test_an_epsilon_far_above_1e_6_fails_the_random_boxes() -> None:
    with pytest.raises(AssertionError, match="IoU of random float64 boxes"):
        run("test_random_boxes", eps_added(1e-3))


@pytest.mark.parametrize("box_iou", [
    pytest.param(float32_arithmetic, id="float32 arithmetic, cast back"),
    pytest.param(right_dtype_wrong_values, id="0.5 everywhere in the right dtype"),
])
def test_the_dtype_gate_passes_the_right_dtype_and_device_whatever_the_values(box_iou: BoxIou) -> None:
    run("test_dtype_and_device", box_iou)


def test_the_dtype_gate_fails_a_float64_result_for_float32_boxes() -> None:
    with pytest.raises(AssertionError, match=r"expected dtype torch\.float32, got torch\.float64"):
        run("test_dtype_and_device", float64_out)
