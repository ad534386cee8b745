"""Judge-side helpers of the `latency` checks: inputs, tolerances, preparing the workers.

Runs in the judge only. Images come from the challenge's synthetic generator (loaded by
path from ``assets/``) with seeds that never leave the judge. Expected logits come from
the original model in the *reference's* worker: the candidate's worker shares a process
with the candidate's code, so nothing computed there is trusted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from grader.judgekit import expect_tensor

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHAPE = (1, 3, 64, 64)
NUM_CLASSES = 10

# Logits of the candidate's callable must be within ATOL + RTOL * |expected| of the original's
# (logits reach about +-23). Measured on 1,060 images (tools/README.md): float32 rewrites are
# 4e-6 off; float16 arithmetic at most 0.44 of this tolerance; bfloat16 up to 5 times it.
ATOL = 0.02
RTOL = 0.002
MIN_TOP1_AGREEMENT = 0.99
SETUP_TIMEOUT_S = 120.0  # optimize() may compile; the checks' own limits leave room for it
CALL_TIMEOUT_S = 10.0


def _load(name: str, filename: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ASSETS / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def synthetic_images(n: int, seed: int) -> torch.Tensor:
    """``n`` fresh images [n, 3, 64, 64] from the challenge's generator."""
    images, _ = _load("cvgrade_judge_latency_synthetic", "synthetic.py").make_images(n, seed)
    return images


def unusual_images(seed: int) -> torch.Tensor:
    """Inputs outside the training distribution: flat colours, black, white, noise, smooth fields, extremes."""
    gen = torch.Generator().manual_seed(seed)
    flat = torch.rand(6, 3, 1, 1, generator=gen).expand(6, 3, 64, 64)
    extremes = torch.stack([torch.zeros(3, 64, 64), torch.ones(3, 64, 64)])
    noise = torch.rand(8, 3, 64, 64, generator=gen)
    coarse = torch.rand(8, 3, 8, 8, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    binary = (torch.rand(6, 1, 16, 16, generator=gen) < 0.5).float().repeat_interleave(4, 2).repeat_interleave(4, 3)
    binary = binary.expand(6, 3, 64, 64)
    return torch.cat([flat, extremes, noise, smooth, binary]).contiguous()


def prepare(session: Any, seed: int) -> dict[str, Any]:
    """Run ``adapter.prepare`` in a worker unless it is prepared already; return what it reported."""
    if session.call("adapter.prepared", timeout_s=CALL_TIMEOUT_S) is True:
        return {}
    info = session.call("adapter.prepare", seed, timeout_s=SETUP_TIMEOUT_S)
    return info if isinstance(info, dict) else {}


def reference_device(reference: Any) -> str:
    """``cuda`` or ``cpu``: where the workers compute (asked of the reference, which does not lie)."""
    info = prepare(reference, 0)
    device = info.get("device") or reference.call("adapter.device_type", timeout_s=CALL_TIMEOUT_S)
    return "cuda" if str(device).startswith("cuda") else "cpu"


def as_logits(value: Any, what: str) -> torch.Tensor:
    """A [1, 10] float32 tensor, or an assertion error saying what is wrong with ``value``."""
    return expect_tensor(value, what=what, shape=(1, NUM_CLASSES), dtype=torch.float32)


def logits_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest |got - expected| / (ATOL + RTOL * |expected|): at most 1 is within tolerance; NaN is inf."""
    got64, want64 = got.double(), expected.double()
    if not bool(torch.isfinite(got64).all()):
        return float("inf")
    return float(((got64 - want64).abs() / (ATOL + RTOL * want64.abs())).max())
