"""The `compress` challenge's adapter: runs in every worker, beside the solution it serves.

Two roles, in two different workers:

- In the **candidate's** worker, ``compress`` loads ShapeCNN and the calibration images, calls
  the submission's ``compress(model, calibration_images, time_budget_s)`` and packs the artifact
  it returns (``compact.pack``): the judge receives those bytes, measures their length, and
  never runs anything in this worker again. Nothing computed here is trusted.
- In the **evaluator** (the reference's worker: it runs no candidate code), ``load_artifact``
  rebuilds the model from exactly those bytes with the challenge's own loader
  (``compact.build``), and ``logits`` / ``run`` compute with it or with the original model.
  Accuracy and latency are measured there, on images the judge sends.

A restarted worker has lost its state; every function then says so.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

WEIGHTS = "shapecnn.pt"
CALIBRATION_SEED = 7_000_000  # public: candidates can make the same images with synthetic.make_images
CALIBRATION_COUNT = 500


def _load_helper(name: str) -> types.ModuleType:
    """``<name>.py`` from this folder, by path, under a name no file of the submission can shadow."""
    module_name = f"cvgrade_assets_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).resolve().parent / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"the challenge's {name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


compact = _load_helper("compact")
model_code = _load_helper("model")
synthetic = _load_helper("synthetic")

_state: dict[str, Any] = {}


def bind(solution: types.ModuleType, assets_dir: str) -> None:
    """Called by the worker after importing the solution: note it, and pay torch's lazy costs now."""
    _state["solution"] = solution
    _state["assets"] = assets_dir
    _warm_up()


def _warm_up() -> None:
    """Quantise a toy model once, before any clock starts.

    The first ``prepare_fx`` imports torch._dynamo and torch._inductor (10 s and more on a busy
    machine), time no budget should pay: the import phase has its own limit.
    """
    import warnings

    from torch import nn
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        toy = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        prepared = prepare_fx(toy, get_default_qconfig_mapping("x86"), (torch.zeros(1, 3, 8, 8),))
        prepared(torch.rand(2, 3, 8, 8))
        convert_fx(prepared)


def _weights() -> str:
    return os.path.join(_state.get("assets") or os.environ["CVGRADE_ASSETS"], WEIGHTS)


def calibration_images() -> torch.Tensor:
    """The calibration set: ``CALIBRATION_COUNT`` images [N, 3, 64, 64], float32 in [0, 1] (no labels)."""
    images, _ = synthetic.make_images(CALIBRATION_COUNT, CALIBRATION_SEED)
    return images


def sample(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Public images like the hidden ones, and their labels (for practice: the graded images differ)."""
    return synthetic.make_images(int(count), int(seed))


def original_size() -> int:
    """The original model's size in bytes: its float32 weights exported as they are, packed."""
    return len(compact.pack(compact.export_float(model_code.load_model(_weights()))))


# ---------------------------------------------------------------------------- the candidate's side


def compress(budget_s: float, seed: int) -> dict[str, Any]:
    """Call the submission's ``compress``; return the packed artifact as a uint8 tensor and the time it took.

    The model and the calibration images are fresh copies: the submission may change them.
    """
    solution = _state["solution"]
    function = getattr(solution, "compress", None)
    if not callable(function):
        raise AttributeError("your solution does not define compress(model, calibration_images, time_budget_s)")
    model = model_code.load_model(_weights())
    images = calibration_images()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    started = time.perf_counter()
    artifact = function(model, images, float(budget_s))
    seconds = time.perf_counter() - started
    blob = compact.pack(artifact)
    return {"artifact": torch.frombuffer(bytearray(blob), dtype=torch.uint8), "compress_s": round(seconds, 3)}


# ---------------------------------------------------------------------------- the evaluator's side


def load_artifact(blob: torch.Tensor) -> dict[str, Any]:
    """Rebuild the compressed model from the packed bytes ``blob`` (uint8, 1-D) and keep it.

    Returns what it is made of, or ``{"error": message}`` when the bytes are not a model
    this format runs (the message names the node or tensor at fault).
    """
    _state.pop("compressed", None)
    if type(blob) is not torch.Tensor or blob.dtype != torch.uint8 or blob.dim() != 1:
        return {"error": "the artifact must arrive as a 1-D uint8 tensor"}
    try:
        artifact = compact.unpack(blob.numpy().tobytes())
        model = compact.build(artifact)
    except compact.CompactError as err:
        return {"error": str(err)}
    _state["compressed"] = model
    by_dtype: dict[str, int] = {}
    for tensor in artifact["tensors"].values():
        name = str(tensor.dtype).removeprefix("torch.")
        by_dtype[name] = by_dtype.get(name, 0) + tensor.numel() * tensor.element_size()
    ops: dict[str, int] = {}
    for node in artifact["nodes"]:
        ops[node["op"]] = ops.get(node["op"], 0) + 1
    return {"nodes": len(artifact["nodes"]), "ops": ops, "tensor_bytes": by_dtype, "engine": artifact["engine"]}


def _model(which: str) -> Any:
    if which == "original":
        if "original" not in _state:
            _state["original"] = model_code.load_model(_weights())
        return _state["original"]
    if which != "compressed" or "compressed" not in _state:
        raise RuntimeError("no compressed model in this worker: load_artifact did not succeed here "
                           "(or the worker was restarted)")
    return _state["compressed"]


def logits(which: str, images: torch.Tensor) -> torch.Tensor:
    """Logits [B, 10] (float32) of the ``original`` or ``compressed`` model for ``images`` [B, 3, 64, 64]."""
    model = _model(which)
    with torch.inference_mode():
        return model(images).float().clone()


def run(which: str, image: torch.Tensor) -> torch.Tensor:
    """One call as the service makes it: ``model(image)`` for one image [1, 3, 64, 64] (timed by the judge)."""
    model = _model(which)
    with torch.inference_mode():
        return model(image).float()
