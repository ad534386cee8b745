"""The `latency` challenge's adapter: runs in every worker, beside the solution it serves.

The judge cannot send a model or a callable over its channel (plain data only), so this
module holds them here, in module globals: ``prepare`` loads ShapeNet-10 and calls the
solution's ``optimize(model, example_input)``; ``run_optimized`` and ``run_original`` then
take one image and return its logits. The judge times those calls on its own clock.

It shares a process with the solution, so in the candidate's worker nothing here is
trusted: the judge times the original model only in the reference's worker (a clean
sandbox with the same limits) and takes expected logits only from there.

If the worker is restarted (after a crash or a time-out), the state is gone and every
call says so until ``prepare`` runs again.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import types
from typing import Any

import torch

WEIGHTS = "shapenet10.pt"
INPUT_SHAPE = (1, 3, 64, 64)

_bound: dict[str, Any] = {}
_state: dict[str, Any] = {}


def bind(solution: types.ModuleType, assets_dir: str) -> None:
    """Called by the worker after importing the solution."""
    _bound["solution"] = solution
    _bound["assets"] = assets_dir


def _load_by_path(name: str, filename: str) -> types.ModuleType:
    """Our helper files, by path under names of our own (the solution's folder is on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(_bound["assets"], filename))
    if spec is None or spec.loader is None:
        raise ImportError(f"the challenge's {filename} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _require(key: str) -> Any:
    if key not in _state:
        raise RuntimeError(
            "the model is not prepared in this worker: prepare() was not called, or the worker was "
            "restarted after a crash or a time-out and lost it"
        )
    return _state[key]


def prepare(seed: int) -> dict[str, Any]:
    """Load ShapeNet-10 twice (one copy for ``optimize``, one kept as the original); call ``optimize``.

    Returns where it runs and how long ``optimize`` took (the worker's own clock, for the report).
    """
    _state.clear()
    model_module = _load_by_path("cvgrade_assets_model", "model.py")
    device = _device()
    weights = os.path.join(_bound["assets"], WEIGHTS)
    original = model_module.load_model(weights, device)
    given = model_module.load_model(weights, device)
    generator = torch.Generator().manual_seed(int(seed))
    example = torch.rand(INPUT_SHAPE, generator=generator).to(device)
    started = time.perf_counter()
    optimized = _bound["solution"].optimize(given, example)
    setup_s = time.perf_counter() - started
    if not callable(optimized):
        raise TypeError(f"optimize(model, example_input) returned a {type(optimized).__name__}, not a callable")
    _state.update(original=original, optimized=optimized, device=device)
    return {"device": str(device), "setup_s": round(setup_s, 4)}


def device_type() -> str:
    """``cuda`` or ``cpu``: where this worker computes."""
    return _device().type


def prepared() -> bool:
    """Whether ``prepare`` has run in this worker (a restarted worker has lost it)."""
    return "optimized" in _state


def _logits(value: Any, device: torch.device, what: str) -> Any:
    """The callable's result as the judge should see it: a plain tensor copied to the CPU."""
    if type(value) is not torch.Tensor:
        return value  # the judge says what is wrong with it
    if value.device.type != device.type:
        raise TypeError(f"{what} returned a tensor on {value.device}, not on the input's device ({device})")
    return value.detach().cpu()


def run_original(images: torch.Tensor) -> Any:
    """The model as handed over, called the way the service calls it: ``model(images)``."""
    original = _require("original")
    device = _require("device")
    return _logits(original(images.to(device)), device, "the original model")


def run_optimized(images: torch.Tensor) -> Any:
    """The callable returned by ``optimize``, on one batch of images."""
    optimized = _require("optimized")
    device = _require("device")
    return _logits(optimized(images.to(device)), device, "the callable returned by optimize")


def run_optimized_checked(images: torch.Tensor) -> dict[str, Any]:
    """Like ``run_optimized``, and whether the callable left its input tensor unchanged (untimed)."""
    optimized = _require("optimized")
    device = _require("device")
    given = images.to(device)
    before = given.clone()
    logits = _logits(optimized(given), device, "the callable returned by optimize")
    unchanged = bool(given.shape == before.shape and given.dtype == before.dtype and torch.equal(given, before))
    return {"logits": logits, "input_unchanged": unchanged}
