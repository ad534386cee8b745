"""The `augment` challenge's adapter: runs in the worker, beside the solution.

A ``torch.Generator`` cannot cross the judge's channel (plain data only), so the
judge asks this module to make one from a seed and to call the solution's
``sample_params`` with it many times. It shares a process with the solution, so
nothing here is trusted: the judge checks every value it returns.
"""

from __future__ import annotations

import types
from typing import Any

import torch

_bound: dict[str, Any] = {}


def bind(solution: types.ModuleType, assets_dir: str) -> None:
    """Called by the worker after importing the solution."""
    _bound["solution"] = solution


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_floating_point():
            raise ValueError(f"sample_params: {what} must be an integer, got a tensor of shape {tuple(value.shape)}")
        return int(value.item())
    if isinstance(value, bool) or not isinstance(value, int):
        if what == "flip" and isinstance(value, bool):
            return int(value)
        raise ValueError(f"sample_params: {what} must be {'a bool' if what == 'flip' else 'an int'}, "
                         f"got {type(value).__name__}")
    return int(value)


def sample_many(seed: int, count: int, image_hw: list[int], out_hw: list[int]) -> dict[str, Any]:
    """``count`` draws of ``sample_params`` from one generator seeded with ``seed``.

    Returns {"params": int64 tensor [count, 8] of (flip, rotate, top, left, crop_h, crop_w, out_h, out_w),
    "global_rng_changed": whether torch's global generator moved meanwhile}.
    """
    sample_params = getattr(_bound.get("solution"), "sample_params", None)
    if sample_params is None:
        raise RuntimeError("the solution defines no sample_params")
    generator = torch.Generator().manual_seed(int(seed))
    global_before = torch.random.get_rng_state()
    rows = []
    for _ in range(int(count)):
        params = sample_params(generator, (int(image_hw[0]), int(image_hw[1])), (int(out_hw[0]), int(out_hw[1])))
        if not isinstance(params, dict):
            raise ValueError(f"sample_params must return a dict, got {type(params).__name__}")
        missing = {"flip", "rotate", "crop", "size"} - set(params)
        if missing:
            raise ValueError(f"sample_params returned a dict without {sorted(missing)}")
        crop, size = params["crop"], params["size"]
        if len(crop) != 4 or len(size) != 2:
            raise ValueError("sample_params: crop must have 4 numbers (top, left, height, width), size 2")
        flip = params["flip"]
        flip = int(flip.item()) if isinstance(flip, torch.Tensor) else flip
        rows.append([_as_int(flip, "flip"), _as_int(params["rotate"], "rotate"),
                     *(_as_int(v, "crop") for v in crop), *(_as_int(v, "size") for v in size)])
    changed = not torch.equal(global_before, torch.random.get_rng_state())
    return {"params": torch.tensor(rows, dtype=torch.int64).reshape(-1, 8), "global_rng_changed": changed}
